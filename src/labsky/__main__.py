from labsky.cli import main

main()
