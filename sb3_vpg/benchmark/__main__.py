from sb3_vpg.benchmark.cli import main

main()
