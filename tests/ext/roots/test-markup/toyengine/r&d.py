"""Research & development."""


class Lab:
    def run(self) -> str:
        """Returns "<&>"."""
        return "<" + '&' + ">"
