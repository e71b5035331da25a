# Your application's entry point: uota's launcher (the board's main.py) runs this file in
# its own thread at boot, next to the OTA server. Pushes with `uota fast` replace it.
from app import app

app.run()
