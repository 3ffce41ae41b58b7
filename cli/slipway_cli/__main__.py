from slipway_cli.main import main

main()
