"""The app for gunicorn (``wsgi:app``) and the flask CLI (``flask --app wsgi``).

Bad configuration stops the start with one line on stderr naming the variable, exit status 2.
``flask --app wsgi keys generate`` only prints a new key, so it runs before any key is set.
"""

import sys

from retreat import create_app
from retreat.config import exit_on_bad_configuration, printing_only_command

app = create_app({"START_UP_CHECKS": False}) if printing_only_command(sys.argv) else exit_on_bad_configuration(create_app)
