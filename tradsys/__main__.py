from tradsys.cli.app import main

main()
