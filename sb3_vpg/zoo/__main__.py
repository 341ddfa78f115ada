from sb3_vpg.zoo.cli import main

main(prog="python -m sb3_vpg.zoo")
