from stockpile.cli import main

main()
