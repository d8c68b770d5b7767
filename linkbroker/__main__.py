from linkbroker.cli import main

main()
