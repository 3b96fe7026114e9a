"""Command-line interface (placeholder)."""
import click

@click.group()
def main():
    """sg3keras command-line tools."""

if __name__ == "__main__":
    main()
