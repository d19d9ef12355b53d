"""Extensions, created unbound; ``create_app`` binds them."""

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from retreat.database import Base

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
csrf = CSRFProtect()
login_manager = LoginManager()
# Redis down (issue #22 item 5) never turns a request into a 500: the first storage error switches
# Flask-Limiter to per-process in-memory counts of the same limits (one warning logged by
# "flask-limiter"; it tries Redis again with a growing back-off and goes back when it answers), and
# any other storage error is logged and the request let through. Short Redis timeouts, so that an
# unreachable host costs half a second once, not a hung worker (memory:// ignores these options).
limiter = Limiter(key_func=get_remote_address, default_limits=[], headers_enabled=True,
                  in_memory_fallback_enabled=True, swallow_errors=True,
                  storage_options={"socket_connect_timeout": 0.5, "socket_timeout": 0.5})
api = Api()
