"""tinycc_nn/search/pareto.py: which trials are on the front, and the table."""
from tinycc_nn.search.pareto import markdown, mark_front


def _row(trial, accuracy, rom, ram, cycles):
    return {"trial": trial, "accuracy": accuracy, "rom_used": rom, "rom_capacity": 1016,
            "rom_unit": "words", "ram_used": ram, "ram_capacity": 64, "cycles_per_inference": cycles,
            "input": "8x8", "widths": "64-16-10", "schemes": "pm2/pm2", "act_bits": 4, "bias": True}


def test_the_front_keeps_what_nothing_beats():
    rows = [_row(0, 0.90, 700, 50, 60000),   # the most accurate
            _row(1, 0.85, 400, 40, 30000),   # smaller everywhere
            _row(2, 0.84, 500, 45, 40000),   # beaten by 1 on everything
            _row(3, 0.85, 400, 40, 30000),   # a tie with 1: neither beats the other
            _row(4, 0.80, 450, 30, 50000)]   # least RAM
    front = mark_front(rows)
    assert [r["trial"] for r in front] == [0, 1, 3, 4]
    assert not rows[2]["on_front"]
    table = markdown(front, "t", {"trained": 5, "rejected": 2})
    assert "5 trials trained, 2 rejected" in table
    assert "| 0 | 90.00% | 700/1016 | 50/64 | 60000 | 8x8 | 64-16-10 | pm2/pm2 | 4 | yes |" in table
