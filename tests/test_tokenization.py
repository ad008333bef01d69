"""The prompt is tokenised as the released LISA weights saw it (transformers 4.31, slow tokenizer)."""

from __future__ import annotations

from minelisa_training.prompts import (
    IGNORE_INDEX,
    IMAGE_TOKEN_INDEX,
    build_prompt,
    encode_conversation,
    tokenize_with_image,
)


def test_added_tokens_strip_surrounding_whitespace(tiny):
    _, tok = tiny
    ids = tokenize_with_image(tok, build_prompt("Please segment the cable in this image."))
    pieces = tok.pieces([i for i in ids if i != IMAGE_TOKEN_INDEX])
    start = pieces.index("<im_start>")
    end = pieces.index("<im_end>")
    # The space before <im_start> is stripped: the piece before it is "USER:"'s last piece, not "▁".
    assert pieces[start - 1] != "▁" and not pieces[start - 1].endswith("▁")
    # The newline after <im_end> is stripped and the next chunk starts with the dummy prefix.
    assert pieces[end + 1].startswith("▁") and pieces[end + 1] != "<0x0A>"
    assert "<0x0A>" not in pieces


def test_single_bos_and_one_image_placeholder(tiny):
    _, tok = tiny
    ids = tokenize_with_image(tok, build_prompt("segment the cable", "[SEG]."))
    assert ids.count(IMAGE_TOKEN_INDEX) == 1
    assert ids.count(tok.bos_id) == 1 and ids[0] == tok.bos_id
    assert ids[-1] == tok.eos_id
    # <im_start> directly precedes and <im_end> directly follows the placeholder.
    p = ids.index(IMAGE_TOKEN_INDEX)
    assert ids[p - 1] == tok.token_to_id("<im_start>") and ids[p + 1] == tok.token_to_id("<im_end>")


def test_seg_is_one_token_from_the_files(tiny):
    _, tok = tiny
    seg = tok.token_to_id("[SEG]")
    assert seg == tok.added_tokens["[SEG]"] == len(tok) - 1
    assert tok.encode("[SEG]") == [tok.bos_id, seg]
    assert tok.encode("it is [SEG].", add_bos=False).count(seg) == 1


def test_each_chunk_gets_its_own_dummy_prefix(tiny):
    _, tok = tiny
    split = tok.encode("cable[SEG]door", add_bos=False)
    seg = tok.token_to_id("[SEG]")
    left, right = split[: split.index(seg)], split[split.index(seg) + 1 :]
    assert left == tok.sp.encode("cable") and right == tok.sp.encode("door")
    assert tok.pieces(right)[0].startswith("▁")
    assert tok.decode(split) == "cable [SEG] door"


def test_labels_supervise_only_the_answer(tiny):
    _, tok = tiny
    ids, labels = encode_conversation(
        tok, "Please segment the cable in this image.", "Sure, it is [SEG]."
    )
    assert ids.shape == labels.shape
    kept = [int(i) for i in labels if i != IGNORE_INDEX]
    assert kept[-1] == tok.eos_id
    assert tok.token_to_id("[SEG]") in kept
    assert "cable" not in tok.decode(kept)
    assert tok.decode(kept).startswith("Sure")
    # Everything up to and including "ASSISTANT:" is ignored, the image placeholder too.
    first = next(i for i, v in enumerate(labels.tolist()) if v != IGNORE_INDEX)
    assert IMAGE_TOKEN_INDEX in ids[:first].tolist()
    assert "ASSISTANT" in tok.decode([i for i in ids[:first].tolist() if i >= 0])
