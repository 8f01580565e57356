"""The shipped text sets: calibration text never overlaps the held-out evaluation sentences."""

from prunekit.nn.oneshot.corpus import builtin_sentences, everyday_paragraphs, everyday_sentences


def test_everyday_sentences_are_disjoint_from_held_out_set() -> None:
    calib, held_out = everyday_sentences(), builtin_sentences()
    assert len(calib) == 264 and len(set(calib)) == 264
    assert len(held_out) == 100
    assert not set(calib) & set(held_out)
    assert all(s.endswith(".") and len(s.split()) >= 5 for s in calib)


def test_everyday_paragraphs_are_seeded_and_built_from_the_calibration_set() -> None:
    a, b = everyday_paragraphs(20, seed=3), everyday_paragraphs(20, seed=3)
    assert a == b and a != everyday_paragraphs(20, seed=4)
    pool = set(everyday_sentences())
    for p in a:
        parts = [s + "." for s in p[:-1].split(". ")]
        assert len(parts) == 3 and all(s in pool for s in parts)
