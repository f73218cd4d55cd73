from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradsys.engine.bars import Bar, BarAggregator, format_interval, parse_interval

S = 1_000_000_000
M = 60 * S
H = 60 * M
D = 24 * H


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1s", 1_000_000_000),
        ("5s", 5_000_000_000),
        ("1m", 60_000_000_000),
        ("5m", 300_000_000_000),
        ("15m", 900_000_000_000),
        ("1h", 3_600_000_000_000),
        ("4h", 14_400_000_000_000),
        ("1d", 86_400_000_000_000),
        ("90s", 90_000_000_000),
        ("120m", 7_200_000_000_000),
    ],
)
def test_parse_interval(text: str, ns: int) -> None:
    assert parse_interval(text) == ns


@pytest.mark.parametrize(
    "text",
    ["0m", "1x", "", "-1m", "m", "1", "1.5m", "01m", "1M", " 1m", "1m ", "1m\n", "1 m", "+1m", "١m"],
)
def test_parse_interval_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid interval"):
        parse_interval(text)


@pytest.mark.parametrize(
    ("ns", "text"),
    [(S, "1s"), (90 * S, "90s"), (M, "1m"), (15 * M, "15m"), (120 * M, "2h"), (4 * H, "4h"), (D, "1d"), (36 * H, "36h"), (2 * D, "2d")],
)
def test_format_interval(ns: int, text: str) -> None:
    assert format_interval(ns) == text
    assert parse_interval(text) == ns


@pytest.mark.parametrize("ns", [0, -M, S // 2, S + 1])
def test_format_interval_rejects(ns: int) -> None:
    with pytest.raises(ValueError):
        format_interval(ns)


@pytest.mark.parametrize(
    ("intervals", "keep"), [([], 10), ([M, M], 10), ([0], 10), ([-M], 10), ([M], -1)]
)
def test_aggregator_rejects_bad_config(intervals: list[int], keep: int) -> None:
    with pytest.raises(ValueError):
        BarAggregator(intervals, keep=keep)


def test_ohlcv_hand_computed() -> None:
    agg = BarAggregator([M])
    assert agg.on_trade("X", 0, 100, 2) == []
    assert agg.on_trade("X", 10 * S, 105, 1) == []
    assert agg.on_trade("X", 20 * S, 98, 3) == []
    assert agg.on_trade("X", 30 * S, 103, 5) == []
    assert agg.on_trade("X", M - 1, 101, 4) == []
    # open 100, high 105, low 98, close 101 (last), volume 2+1+3+5+4, 5 trades
    expected = Bar("X", M, 0, 100, 105, 98, 101, 15, 5)
    assert agg.current("X", M) == expected
    # A trade exactly on the boundary belongs to the next bar.
    assert agg.on_trade("X", M, 110, 7) == [expected]
    assert agg.current("X", M) == Bar("X", M, M, 110, 110, 110, 110, 7, 1)
    assert agg.history("X", M) == [expected]


@pytest.mark.parametrize(
    ("interval_ns", "ts_ns", "start_ns"),
    [
        (5 * M, 3 * 5 * M + 17 * S, 15 * M),
        (5 * M, 15 * M, 15 * M),
        (5 * M, 20 * M - 1, 15 * M),
        (H, 7 * H + 59 * M, 7 * H),
        # 2024-01-02T13:45:10Z falls in the UTC day starting 2024-01-02T00:00Z.
        (D, 1_704_203_110 * S + 123, 1_704_153_600 * S),
    ],
)
def test_bar_alignment(interval_ns: int, ts_ns: int, start_ns: int) -> None:
    agg = BarAggregator([interval_ns])
    agg.on_trade("X", ts_ns, 100, 1)
    bar = agg.current("X", interval_ns)
    assert bar is not None
    assert bar.start_ns == start_ns


def test_day_bars_are_utc_days() -> None:
    ts_ns = int(datetime(2024, 1, 2, 13, 45, 10, tzinfo=timezone.utc).timestamp()) * S
    agg = BarAggregator([D])
    agg.on_trade("X", ts_ns, 100, 1)
    bar = agg.current("X", D)
    assert bar is not None
    assert bar.start_ns == int(datetime(2024, 1, 2, tzinfo=timezone.utc).timestamp()) * S


def test_later_trade_closes_bar() -> None:
    agg = BarAggregator([M])
    agg.on_trade("X", 5 * S, 100, 1)
    agg.on_trade("X", 6 * S, 102, 2)
    closed = agg.on_trade("X", M + 1, 99, 3)
    assert closed == [Bar("X", M, 0, 100, 102, 100, 102, 3, 2)]
    assert agg.current("X", M) == Bar("X", M, M, 99, 99, 99, 99, 3, 1)


def test_advance_closes_ended_bars() -> None:
    agg = BarAggregator([M, 5 * M])
    agg.on_trade("X", 5 * S, 100, 1)
    assert agg.advance(M - 1) == []
    assert agg.advance(M) == [Bar("X", M, 0, 100, 100, 100, 100, 1, 1)]
    assert agg.current("X", M) is None
    assert agg.current("X", 5 * M) == Bar("X", 5 * M, 0, 100, 100, 100, 100, 1, 1)
    assert agg.advance(2 * M) == []
    assert agg.advance(M) == []  # clock moving back is a no-op
    assert agg.advance(5 * M) == [Bar("X", 5 * M, 0, 100, 100, 100, 100, 1, 1)]
    assert agg.history("X", M) == [Bar("X", M, 0, 100, 100, 100, 100, 1, 1)]
    assert agg.history("X", 5 * M) == [Bar("X", 5 * M, 0, 100, 100, 100, 100, 1, 1)]


def test_gaps_produce_no_bars() -> None:
    agg = BarAggregator([M])
    agg.on_trade("X", 10 * S, 100, 1)
    closed = agg.on_trade("X", 5 * M + S, 120, 2)
    assert closed == [Bar("X", M, 0, 100, 100, 100, 100, 1, 1)]
    assert agg.current("X", M) == Bar("X", M, 5 * M, 120, 120, 120, 120, 2, 1)
    assert agg.advance(60 * M) == [Bar("X", M, 5 * M, 120, 120, 120, 120, 2, 1)]
    assert [bar.start_ns for bar in agg.history("X", M)] == [0, 5 * M]


def test_symbols_and_intervals_independent() -> None:
    agg = BarAggregator([M, 5 * M])
    agg.on_trade("A", 0, 100, 1)
    agg.on_trade("B", 30 * S, 200, 2)
    # A's second minute closes A's 1m bar only: not B's, not A's 5m.
    assert agg.on_trade("A", M, 101, 3) == [Bar("A", M, 0, 100, 100, 100, 100, 1, 1)]
    assert agg.current("B", M) == Bar("B", M, 0, 200, 200, 200, 200, 2, 1)
    assert agg.current("A", 5 * M) == Bar("A", 5 * M, 0, 100, 101, 100, 101, 4, 2)
    assert agg.history("B", M) == []
    # Closing order follows the constructor's interval order.
    assert agg.on_trade("A", 5 * M, 99, 1) == [
        Bar("A", M, M, 101, 101, 101, 101, 3, 1),
        Bar("A", 5 * M, 0, 100, 101, 100, 101, 4, 2),
    ]
    assert agg.current("B", 5 * M) == Bar("B", 5 * M, 0, 200, 200, 200, 200, 2, 1)


def test_unknown_symbol_and_interval() -> None:
    agg = BarAggregator([M])
    assert agg.current("NOPE", M) is None
    assert agg.history("NOPE", M) == []
    with pytest.raises(KeyError):
        agg.current("NOPE", 5 * M)
    with pytest.raises(KeyError):
        agg.history("NOPE", 5 * M)


def test_history_bounded_by_keep() -> None:
    agg = BarAggregator([M], keep=3)
    for minute in range(11):
        agg.on_trade("X", minute * M, 100 + minute, 1)
    history = agg.history("X", M)
    assert [bar.start_ns for bar in history] == [7 * M, 8 * M, 9 * M]
    assert [bar.close for bar in history] == [107, 108, 109]


def test_current_is_a_snapshot() -> None:
    agg = BarAggregator([M])
    agg.on_trade("X", 0, 100, 1)
    snapshot = agg.current("X", M)
    agg.on_trade("X", S, 120, 1)
    assert snapshot == Bar("X", M, 0, 100, 100, 100, 100, 1, 1)


def test_out_of_order_trade_joins_open_bar() -> None:
    agg = BarAggregator([M])
    agg.on_trade("X", 10 * S, 100, 1)
    agg.on_trade("X", M + S, 101, 1)
    assert agg.on_trade("X", 30 * S, 90, 5) == []  # belongs to the closed bar's interval
    assert agg.history("X", M) == [Bar("X", M, 0, 100, 100, 100, 100, 1, 1)]
    assert agg.current("X", M) == Bar("X", M, M, 101, 101, 90, 90, 6, 2)


def test_late_trade_after_advance_never_reopens() -> None:
    agg = BarAggregator([M])
    agg.on_trade("X", 10 * S, 100, 1)
    agg.advance(2 * M + 5 * S)
    # 30s and 90s are in intervals the clock has ended: the trade goes to the
    # interval containing the clock, for an existing and a new symbol alike.
    agg.on_trade("X", 30 * S, 95, 2)
    agg.on_trade("Y", 90 * S, 50, 3)
    assert agg.current("X", M) == Bar("X", M, 2 * M, 95, 95, 95, 95, 2, 1)
    assert agg.current("Y", M) == Bar("Y", M, 2 * M, 50, 50, 50, 50, 3, 1)
    assert [bar.start_ns for bar in agg.history("X", M)] == [0]


trades = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=10 * M),  # gap to previous trade
        st.integers(min_value=1, max_value=1_000_000),
        st.integers(min_value=1, max_value=1_000),
    ),
    max_size=200,
)


@given(trades=trades, start_ns=st.integers(min_value=0, max_value=2**62))
def test_bars_conserve_trades(trades: list[tuple[int, int, int]], start_ns: int) -> None:
    intervals = [S, M, 7 * S, H]
    agg = BarAggregator(intervals, keep=10_000)
    closed: list[Bar] = []
    ts_ns = start_ns
    for gap_ns, price, qty in trades:
        ts_ns += gap_ns
        closed += agg.on_trade("X", ts_ns, price, qty)
    for interval_ns in intervals:
        bars = [bar for bar in closed if bar.interval_ns == interval_ns]
        assert bars == agg.history("X", interval_ns)
        current = agg.current("X", interval_ns)
        if current is not None:
            bars.append(current)
        assert sum(bar.volume for bar in bars) == sum(qty for _, _, qty in trades)
        assert sum(bar.trades for bar in bars) == len(trades)
        for bar in bars:
            assert bar.low <= bar.open <= bar.high
            assert bar.low <= bar.close <= bar.high
            assert bar.start_ns % interval_ns == 0
        starts = [bar.start_ns for bar in bars]
        assert starts == sorted(set(starts))
