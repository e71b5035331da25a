from uota_core.cli import main

main()
