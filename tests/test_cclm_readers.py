"""The multilingual readers (CCLM pre-training data, IGLUE and Multi30K tasks) on small files in each real schema.

The formats are not registered in ``sources.SOURCE_FORMATS`` yet; each test registers its reader's
``FORMAT`` for the test alone, so entries go through the real source parser.
"""

from __future__ import annotations

import base64
import gzip
import json

import pytest

from x2vlm_core.data import sources
from x2vlm_core.data.readers import (
    cclm_image_text,
    languages,
    marvl,
    multi30k,
    parallel_tsv,
    retrieval_json,
    xflickrco,
    xgqa,
    xvnli,
)
from x2vlm_core.errors import DataError

READERS = {
    "cclm_image_text": cclm_image_text,
    "parallel_tsv": parallel_tsv,
    "xvnli": xvnli,
    "xgqa": xgqa,
    "marvl": marvl,
    "xflickrco": xflickrco,
    "multi30k": multi30k,
    "retrieval_json": retrieval_json,
}


@pytest.fixture
def read(monkeypatch, tmp_path):
    """``read(format, **entry)`` → the records of one source entry (paths relative to tmp_path)."""

    def run(format_name, **entry):
        monkeypatch.setitem(sources.SOURCE_FORMATS, format_name, READERS[format_name].FORMAT)
        source = sources.parse_source({"format": format_name, "dataset": "d", **entry}, "test", tmp_path)
        reader = READERS[format_name]
        if hasattr(reader, "parts"):
            return [record for part in reader.parts(source) for record in reader.read(source, part)]
        return list(reader.read(source))

    return run


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def lines(*objects):
    return "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects)


def test_language_comes_from_the_option_the_folder_or_the_file_name(tmp_path):
    assert languages.language_of("auto", tmp_path / "XVNLI/annotations/ar/test.jsonl") == "ar"
    assert languages.language_of("auto", tmp_path / "marvl-zh.json") == "zh"
    assert languages.language_of("auto", tmp_path / "mscoco/ja.1k_test.json") == "ja"
    assert languages.language_of("auto", tmp_path / "multi30k/test_2016_flickr.cs.json") == "cs"
    assert languages.language_of("pt", tmp_path / "whatever.json") == "pt"
    with pytest.raises(DataError, match="set 'language'"):
        languages.language_of("auto", tmp_path / "annotations/test.jsonl")
    with pytest.raises(DataError, match=r"names \['de', 'fr'\]"):
        languages.language_of("auto", tmp_path / "data/de-fr.json")
    with pytest.raises(DataError, match="not a language code"):
        languages.language_of("german", tmp_path / "x.json")
    assert languages.language_pair_of("auto", tmp_path / "WikiMatrix.de-en.tsv.gz") == ("de", "en")
    with pytest.raises(DataError, match="language_pair"):
        languages.language_pair_of("auto", tmp_path / "pairs.tsv")


def test_cclm_image_text_keeps_each_caption_with_its_language(read, tmp_path):
    image = base64.b64encode(b"not decoded by the reader").decode()
    write(
        tmp_path / "cc3m-uc2/part-00000",
        lines(
            {"binary": image, "caption": {"en": "A red circle.", "de": "Ein roter Kreis."}, "image_id": 7},
            {
                "binary": image,
                "caption": [{"en": "two squares", "zh": "两个正方形"}, {"en": "squares", "zh": "正方形"}],
            },
        ),
    )
    first, second = read("cclm_image_text", data="cc3m-uc2")
    assert first["kind"] == "image_text" and first["split"] == "train" and first["image_id"] == 7
    assert first["captions"] == ["Ein roter Kreis.", "A red circle."] and first["caption_languages"] == ["de", "en"]
    assert second["captions"] == ["two squares", "两个正方形", "squares", "正方形"]
    assert second["caption_languages"] == ["en", "zh", "en", "zh"]
    assert first["image_paths"][0].endswith(
        "part-00000#line=1&offset=0&size="
        + str(
            len(
                lines(
                    {"binary": image, "caption": {"en": "A red circle.", "de": "Ein roter Kreis."}, "image_id": 7}
                ).encode()
            )
        )
        + "&base64=binary"
    )
    assert first["key"] != second["key"]

    write(tmp_path / "untagged.jsonl", lines({"binary": image, "caption": "a caption without a language"}))
    with pytest.raises(DataError, match="without a language.*x2vlm_image_text"):
        read("cclm_image_text", data="untagged.jsonl")


def test_parallel_tsv_reads_wikimatrix_files_with_scores_and_plain_pairs(read, tmp_path):
    with gzip.open(tmp_path / "WikiMatrix.de-en.tsv.gz", "wt", encoding="utf-8") as handle:
        handle.write("1.21\tEin roter Kreis.\tA red circle.\n1.01\tZu niedrig.\tToo low.\n\n1.3\t\tEmpty side.\n")
    write(tmp_path / "pairs/fr_en.tsv", "Un carré.\tA square.\n")
    scored = read("parallel_tsv", data="WikiMatrix.de-en.tsv.gz", min_score=1.04)
    assert [r["source_text"] for r in scored] == ["Ein roter Kreis.", "Zu niedrig.", ""]
    first = scored[0]
    assert first["kind"] == "parallel_text" and first["image_paths"] == [] and first["score"] == 1.21
    assert (first["source_language"], first["target_language"], first["target_text"]) == ("de", "en", "A red circle.")
    assert "reader_reject" not in first
    assert scored[1]["reader_reject"] == "below_min_score" and scored[2]["reader_reject"] == "empty_caption"
    (plain,) = read("parallel_tsv", data="pairs", language_pair="fr-en")
    assert plain["source_text"] == "Un carré." and "score" not in plain and plain["source_language"] == "fr"
    write(tmp_path / "bad/en-de.tsv", "one column only\n")
    with pytest.raises(DataError, match="line 1 has 1 tab-separated columns"):
        read("parallel_tsv", data="bad")


def test_xvnli_reads_iglue_jsonl(read, tmp_path):
    write(
        tmp_path / "XVNLI/annotations/fr/test.jsonl",
        lines(
            {
                "Flikr30kID": "1000092795",
                "gold_label": "entailment",
                "pairID": "1000092795.jpg#0r1e",
                "sentence1": "Two young guys.",
                "sentence2": "Deux hommes sont dehors.",
            },
            {"Flikr30kID": "1000092795", "gold_label": "-", "sentence1": "x", "sentence2": "Pas de label."},
        ),
    )
    (tmp_path / "flickr30k-images").mkdir()
    good, unlabelled = read("xvnli", annotations="XVNLI/annotations/fr/test.jsonl", images="flickr30k-images")
    assert good["kind"] == "visual_entailment" and good["split"] == "test" and good["language"] == "fr"
    assert (good["image_id"], good["sentence"], good["premise"], good["label"]) == (
        "1000092795",
        "Deux hommes sont dehors.",
        "Two young guys.",
        "entailment",
    )
    assert good["image_paths"] == [str(tmp_path / "flickr30k-images/1000092795.jpg")]
    assert good["key"] == "xvnli-fr-test-1000092795_jpg_0r1e"
    assert unlabelled["reader_reject"] == "no_gold_label"


def test_xgqa_reads_gqa_dicts_and_lxmert_lists(read, tmp_path):
    write(
        tmp_path / "xGQA/few_shot/de/test.json",
        json.dumps(
            {
                "201307251": {
                    "imageId": "n15136",
                    "question": "Ist der Himmel blau?",
                    "answer": "Ja",
                    "fullAnswer": "Ja, ist er.",
                    "types": {"structural": "verify"},
                }
            }
        ),
    )
    write(
        tmp_path / "gqa/train.json",
        json.dumps(
            [{"img_id": "2354786", "sent": "Is the sky dark?", "question_id": "02930152", "label": {"yes": 1.0}}]
        ),
    )
    (tmp_path / "images").mkdir()
    (de,) = read("xgqa", annotations="xGQA/few_shot/de/test.json", images="images")
    assert de["kind"] == "vqa" and de["language"] == "de" and de["question_id"] == "201307251"
    assert (de["image_id"], de["question"], de["answers"], de["answer_scores"], de["answer_type"]) == (
        "n15136",
        "Ist der Himmel blau?",
        ["ja"],
        {"ja": 1.0},
        "verify",
    )
    assert de["image_paths"] == [str(tmp_path / "images/n15136.jpg")]
    (en,) = read("xgqa", annotations="gqa/train.json", images="images", language="en", split="train")
    assert (en["image_id"], en["question_id"], en["answer_scores"], en["split"]) == (
        "2354786",
        "02930152",
        {"yes": 1.0},
        "train",
    )
    write(tmp_path / "bad/en/test.json", json.dumps({"1": {"imageId": "a", "question": "q?"}}))
    with pytest.raises(DataError, match="has no 'answer' field"):
        read("xgqa", annotations="bad/en/test.json", images="images")


def test_marvl_reads_iglue_jsonl_and_nlvr2_style_json(read, tmp_path):
    write(
        tmp_path / "marvl/zero_shot/annotations/marvl-id.jsonl",
        lines(
            {
                "concept": "1-Bebek",
                "language": "id",
                "caption": "Gambar kiri berisi dua bebek.",
                "left_img": "1-1.jpg",
                "right_img": "1-2.jpg",
                "label": True,
                "id": "id-0",
            }
        ),
    )
    image = tmp_path / "marvl-images/id/images/1-Bebek/1-1.jpg"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"x")
    (iglue,) = read("marvl", annotations="marvl/zero_shot/annotations/marvl-id.jsonl", images="marvl-images")
    assert iglue["kind"] == "nlvr2" and iglue["label"] is True and iglue["language"] == "id"
    assert iglue["concept"] == "1-Bebek" and iglue["sentence"] == "Gambar kiri berisi dua bebek."
    assert iglue["image_paths"] == [str(image), str(tmp_path / "marvl-images/id/images/1-Bebek/1-2.jpg")]
    write(
        tmp_path / "data/marvl/marvl-zh.json",
        json.dumps([{"sentence": "左图有两只狗。", "label": "False", "images": ["zh/a.jpg", "zh/b.jpg"]}]),
    )
    (style,) = read("marvl", annotations="data/marvl/marvl-zh.json", images="marvl-images")
    assert style["label"] is False and style["language"] == "zh" and style["identifier"] == "zh-000000000"
    assert style["image_paths"] == [str(tmp_path / "marvl-images/zh/a.jpg"), str(tmp_path / "marvl-images/zh/b.jpg")]
    write(tmp_path / "marvl-sw.json", json.dumps([{"sentence": "s", "label": "maybe", "images": ["a", "b"]}]))
    with pytest.raises(DataError, match="expected true or false"):
        read("marvl", annotations="marvl-sw.json", images="marvl-images")


def test_xflickrco_picks_the_image_folder_by_name(read, tmp_path):
    write(
        tmp_path / "xFlickrCO/annotations/ja/test.jsonl",
        lines(
            {"sentences": ["赤い丸。", "丸い形。"], "id": "1007129816", "img_path": "1007129816.jpg"},
            {"sentences": ["青い四角。"], "id": 391895, "img_path": "COCO_val2014_000000391895.jpg"},
        ),
    )
    (tmp_path / "flickr").mkdir()
    (tmp_path / "val2014").mkdir()
    flickr, coco = read(
        "xflickrco", annotations="xFlickrCO/annotations/ja/test.jsonl", flickr30k_images="flickr", coco_images="val2014"
    )
    assert flickr["captions"] == ["赤い丸。", "丸い形。"] and flickr["caption_languages"] == ["ja", "ja"]
    assert flickr["image_paths"] == [str(tmp_path / "flickr/1007129816.jpg")]
    assert (
        coco["image_paths"] == [str(tmp_path / "val2014/COCO_val2014_000000391895.jpg")]
        and coco["image_id"] == "391895"
    )


def test_multi30k_aligns_each_language_file_with_the_image_split(read, tmp_path):
    write(tmp_path / "task1/image_splits/test_2016_flickr.txt", "1000092795.jpg\n10002456.jpg\n")
    write(tmp_path / "task1/raw/test_2016_flickr.en", "Two young guys.\nSeveral men.\n")
    with gzip.open(tmp_path / "task1/raw/test_2016_flickr.de.gz", "wt", encoding="utf-8") as handle:
        handle.write("Zwei junge Männer.\nMehrere Männer.\n")
    write(tmp_path / "task1/raw/train.fr", "Not this split.\n")
    (tmp_path / "flickr30k").mkdir()
    entry = dict(texts="task1/raw", image_splits="task1/image_splits", images="flickr30k", split="test_2016_flickr")
    first, second = read("multi30k", **entry)
    assert first["image_id"] == "1000092795" and first["captions"] == ["Zwei junge Männer.", "Two young guys."]
    assert first["caption_languages"] == ["de", "en"] and second["captions"] == ["Mehrere Männer.", "Several men."]
    assert first["image_paths"] == [str(tmp_path / "flickr30k/1000092795.jpg")] and first["split"] == "test_2016_flickr"
    (only_en, _) = read("multi30k", **entry, languages=["en"])
    assert only_en["captions"] == ["Two young guys."]
    with pytest.raises(DataError, match=r"no test_2016_flickr.<language> file for \['cs'\]"):
        read("multi30k", **entry, languages=["cs"])
    write(tmp_path / "task1/raw/test_2016_flickr.en", "Only one line.\n")
    with pytest.raises(DataError, match="has 1 lines.*2 images"):
        read("multi30k", **entry)


def test_retrieval_json_merges_one_image_per_record(read, tmp_path):
    write(
        tmp_path / "mscoco/zh.train.json",
        json.dumps(
            [
                {"image": "train2014/COCO_train2014_000000000009.jpg", "caption": "一个红色的圆。", "image_id": 9},
                {"image": "train2014/COCO_train2014_000000000009.jpg", "caption": "圆。", "image_id": 9},
                {"image": "train2014/COCO_train2014_000000000025.jpg", "caption": ["两个正方形。"]},
            ],
            ensure_ascii=False,
        ),
    )
    (tmp_path / "coco").mkdir()
    nine, twenty_five = read("retrieval_json", annotations="mscoco/zh.train.json", images="coco", split="train")
    assert (
        nine["image_id"] == 9
        and nine["captions"] == ["一个红色的圆。", "圆。"]
        and nine["caption_languages"] == ["zh", "zh"]
    )
    assert twenty_five["image_id"] == "COCO_train2014_000000000025"
    assert nine["image_paths"] == [str(tmp_path / "coco/train2014/COCO_train2014_000000000009.jpg")]
