from mailroom.cli.main import main

main()
