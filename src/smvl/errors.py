"""Errors whose message is all the user needs: the CLI prints them without a traceback and exits 2."""


class UserError(Exception):
    pass
