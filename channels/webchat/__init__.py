"""The website chat: a widget on the company's pages (`web/static/widget/`); see plugin.py."""
