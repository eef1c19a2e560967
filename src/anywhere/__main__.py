from anywhere.cli.main import run

run()
