from microstrain.cli import main

main()
