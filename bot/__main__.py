"""`python -m bot …` entry point."""

from bot.cli.main import main

if __name__ == "__main__":
    main()
