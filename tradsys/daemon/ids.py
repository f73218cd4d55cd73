"""A tag for the order ids that actors (the simulated market, live strategies) make up."""


def run_tag(now_ns: int) -> str:
    """The wall-clock millisecond in base 36: short, and different for every start, so that the
    ids of one run never repeat those of an earlier run in the journal."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    n, out = now_ns // 1_000_000, ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out
