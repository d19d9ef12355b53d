from retreat import create_app

app = create_app()
