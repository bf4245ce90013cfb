from mailroom.cli.launch import main

main()
