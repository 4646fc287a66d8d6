"""The pure core: identifier formats, the route and its rules, who may do what, escalation
settings, clocks, errors and the words shown to people. Plain functions and data: nothing
here loads Flask, Werkzeug, SQLAlchemy or SQLModel (a test imports each module in a fresh
interpreter to check), nothing reads the clock or a session."""
