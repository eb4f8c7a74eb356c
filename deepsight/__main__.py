from deepsight.cli import main

main()
