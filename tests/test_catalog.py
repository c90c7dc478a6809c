"""Catalog: migrations, the write path, identifiers and embedding sets."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import numpy as np
import pytest

from al_core.db import sql as db_sql
from al_core.db.catalog import (
    ENV_CATALOG,
    LINGER_S,
    Catalog,
    atomic,
    lock_file,
    resolve_catalog_path,
)
from al_core.embeddings import sql as embeddings_sql
from al_core.embeddings import store_embeddings
from al_core.errors import CatalogError, IngestError, SchemaVersionError


def test_fresh_catalog_has_latest_schema_and_all_tables(tmp_path: Path) -> None:
    with Catalog.open(tmp_path / "c.duckdb") as cat:
        assert cat.schema_version() == db_sql.LATEST_SCHEMA_VERSION
        tables = {r[0] for r in cat.query_rows(db_sql.table_names())}
        assert {"samples", "labels", "model_runs", "predictions", "embedding_sets", "tags",
                "export_batches", "export_items", "metadata_fields", "imports"} <= tables
        versions = cat.query_rows("SELECT version FROM schema_version ORDER BY version")
        assert [v for (v,) in versions] == [m[0] for m in db_sql.MIGRATIONS]


FIXTURES = Path(__file__).parent / "fixtures"


def _v1_catalog(path: Path) -> Path:
    """A real schema-v1 file, built by the frozen v1 DDL (not by today's migrations)."""
    con = duckdb.connect(str(path))
    con.execute((FIXTURES / "catalog_schema_v1.sql").read_text())
    con.close()
    return path


def test_schema_v1_catalog_is_upgraded_and_keeps_its_data(tmp_path: Path) -> None:
    path = _v1_catalog(tmp_path / "old.duckdb")
    with Catalog.open(path) as cat:
        assert cat.schema_version() == db_sql.LATEST_SCHEMA_VERSION
        assert [v for (v,) in cat.query_rows("SELECT version FROM schema_version ORDER BY 1")] \
            == [m[0] for m in db_sql.MIGRATIONS]
        assert cat.query_rows("SELECT sample_id, split, label, content_hash FROM samples ORDER BY 1") == [
            ("s1", "train", "cat", "aa11"), ("s2", "val", "dog", "bb22"), ("s3", "unlabeled", None, "cc33")]
        assert cat.query_rows("SELECT sample_id, label FROM labels ORDER BY label_seq") == [
            ("s1", "cat"), ("s2", "dog")]
        tables = {r[0] for r in cat.query_rows(db_sql.table_names())}
        assert {"tags", "export_batches", "export_items"} <= tables
        # the upgraded file takes new writes: sequences continue where v1 left them
        with cat.transaction("test") as cur:
            cur.execute("INSERT INTO samples (sample_id, uri, split, ingested_at) "
                        "VALUES ('s4', '/data/s4.png', 'train', now()::TIMESTAMP)")
        assert cat.scalar("SELECT sample_key FROM samples WHERE sample_id = 's4'") == 4
        assert cat.data_version() == 2


def test_read_only_open_of_an_old_catalog_asks_for_an_upgrade(tmp_path: Path) -> None:
    path = _v1_catalog(tmp_path / "old.duckdb")
    with pytest.raises(CatalogError, match="schema version 1 and needs upgrading"):
        Catalog.open(path, read_only=True)


def test_catalog_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.duckdb"
    Catalog.open(path).close()  # also lets go of the read connection, so the file is free
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_version VALUES (999, 'future', now()::TIMESTAMP, '9.9')")
    con.close()
    with pytest.raises(SchemaVersionError, match="schema version 999.*newer al-explorer"):
        Catalog.open(path)


def test_read_only_open_of_missing_file_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="does not exist.*al-explorer demo"):
        Catalog.open(tmp_path / "nope.duckdb", read_only=True)


def test_not_a_duckdb_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "junk.duckdb"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CatalogError, match="junk.duckdb"):
        Catalog.open(path)


def test_catalog_path_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_CATALOG, raising=False)
    assert resolve_catalog_path() == Path("data/catalog.duckdb")
    monkeypatch.setenv(ENV_CATALOG, "/tmp/env.duckdb")
    assert resolve_catalog_path() == Path("/tmp/env.duckdb")
    assert resolve_catalog_path("cli.duckdb") == Path("cli.duckdb")


def test_transaction_rolls_back_and_does_not_bump_version(catalog: Catalog) -> None:
    version = catalog.data_version()
    with pytest.raises(RuntimeError), catalog.transaction() as cur:
        cur.execute("INSERT INTO tags VALUES ('x', 't', now()::TIMESTAMP)")
        raise RuntimeError("boom")
    assert catalog.scalar("SELECT count(*) FROM tags") == 0
    assert catalog.data_version() == version
    with catalog.transaction() as cur:
        cur.execute("INSERT INTO tags VALUES ('x', 't', now()::TIMESTAMP)")
    assert catalog.data_version() == version + 1


class _RollbackFails:
    """A cursor whose ROLLBACK fails, as it does when the connection broke mid-transaction."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def execute(self, statement: str, *args: object) -> _RollbackFails:
        self.statements.append(statement)
        if statement == db_sql.ROLLBACK:
            raise duckdb.TransactionException("no transaction is active")
        return self


def test_a_failing_rollback_does_not_hide_the_original_error() -> None:
    cur = _RollbackFails()
    with pytest.raises(ValueError, match="the real cause"), atomic(cur):  # type: ignore[arg-type]
        raise ValueError("the real cause")
    assert cur.statements == [db_sql.BEGIN, db_sql.ROLLBACK]


def test_writes_to_a_read_only_catalog_are_refused_before_touching_the_file(catalog: Catalog) -> None:
    ro = Catalog.open(catalog.path, read_only=True)
    with pytest.raises(CatalogError, match="open read-only; this write \\(tag\\)"), ro.transaction("tag"):
        pass
    assert not lock_file(catalog.path).exists() or lock_file(catalog.path).read_text() == ""


def test_reads_do_not_keep_the_file_from_another_process_for_long(catalog: Catalog) -> None:
    catalog.scalar("SELECT count(*) FROM samples")  # leaves the shared read connection lingering
    time.sleep(LINGER_S * 3)
    con = duckdb.connect(str(catalog.path))  # the file is free again: a plain writer gets it
    con.close()


@pytest.mark.parametrize("name, quoted", [
    ("plain", '"plain"'),
    ('a"b', '"a""b"'),
    ("x; DROP TABLE samples; --", '"x; DROP TABLE samples; --"'),
    ("Ünïcode name", '"Ünïcode name"'),
    ("select", '"select"'),
])
def test_quote_ident(name: str, quoted: str) -> None:
    assert db_sql.quote_ident(name) == quoted
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t ({db_sql.quote_ident(name)} INTEGER)")
    assert [r[0] for r in con.execute("DESCRIBE t").fetchall()] == [name]


@pytest.mark.parametrize("bad", ["", "   ", "tab\there", "x" * 200, "nul\x00"])
def test_quote_ident_refuses_unshowable_names(bad: str) -> None:
    with pytest.raises(ValueError):
        db_sql.quote_ident(bad)


def _seed(cat: Catalog, ids: list[str]) -> None:
    with cat.transaction() as cur:
        for sid in ids:
            cur.execute("INSERT INTO samples (sample_id, uri, split, ingested_at) "
                        "VALUES (?, ?, 'train', now()::TIMESTAMP)", [sid, f"/{sid}.png"])


def test_embeddings_are_fixed_size_arrays_and_validated(catalog: Catalog) -> None:
    _seed(catalog, ["a", "b"])
    vectors = np.arange(8, dtype=np.float32).reshape(2, 4)
    set_id = store_embeddings(catalog, "baseline", "cnn-v1", ["a", "b"], vectors)
    table = embeddings_sql.vectors_table_name(set_id)
    assert catalog.scalar(f"SELECT typeof(vector) FROM {table} LIMIT 1") == "FLOAT[4]"
    got = catalog.scalar(f"SELECT vector FROM {table} WHERE sample_id = 'b'")
    assert list(got) == [4, 5, 6, 7]
    with pytest.raises(IngestError, match="already holds 4-d vectors of 'cnn-v1'; these are 3-d"):
        store_embeddings(catalog, "baseline", "cnn-v1", ["a", "b"], np.zeros((2, 3)))
    with pytest.raises(IngestError, match=r"'b' \(row 1\) has NaN"):
        store_embeddings(catalog, "baseline", "cnn-v1", ["a", "b"], np.array([[0, 0, 0, 0], [np.nan, 0, 0, 0]]))
    with pytest.raises(IngestError, match="'zz' is not in the catalog"):
        store_embeddings(catalog, "other", "m", ["a", "zz"], np.zeros((2, 2)))
    with pytest.raises(IngestError, match=r"shape \(n=1, dim\)"):
        store_embeddings(catalog, "other", "m", ["a"], np.zeros((2, 2)))
    assert catalog.scalar("SELECT count(*) FROM embedding_sets") == 1
