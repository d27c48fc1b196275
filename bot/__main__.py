"""`python -m bot …` entry point."""

from bot.cli import main

if __name__ == "__main__":
    main()
