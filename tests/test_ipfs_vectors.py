"""Fixed CID vectors: the table of CIDs (agreed on by five independent
implementations) and kubo's own fixtures (`test/cli/cid_profiles_test.go`, `add_test.go`), whose inputs
`tests/support/ipfs_data.py` rebuilds. No oracle is needed to run these."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfscraper.ipfs import PROFILES, bytes_cid, directory_cid, file_cid
from hfscraper.ipfs.unixfs import Importer
from tests.support.ipfs_data import KuboRandomReader, make_kubo_hamt_dir, probe_bytes

V0, CIDV1, V1_2025 = PROFILES["unixfs-v0-2015"], PROFILES["kubo-cidv1"], PROFILES["unixfs-v1-2025"]
MiB = 1024 * 1024
KiB = 1024

# size -> (`ipfs add` CIDv0, `ipfs add --cid-version=1`, IPIP-499 unixfs-v1-2025): a table of 24 CIDs that kubo 0.22,
# npm ipfs-unixfs-importer 17.1.1 and aleph-cid agree on.
PROBE_TABLE = {
    0: (
        "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH",
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
    ),
    10: (
        "QmV5VWCWvGb56FGwR5fADbj9zN4SPtbAqN4339JSRaa686",
        "bafkreiefoodound43rvsbeleiodjd6cggejd4lb6fxvrvca7j7ee6m4bnq",
        "bafkreiefoodound43rvsbeleiodjd6cggejd4lb6fxvrvca7j7ee6m4bnq",
    ),
    262144: (
        "QmVHB5X8rJYgVkGX8RRbRTLddMnT2V2xD9Bmh5rNWvDjAg",
        "bafkreiclwtdfxgnngah3xyst5vdjxqwdzxwzvwmdgardfuvnexvclmrcyi",
        "bafkreiclwtdfxgnngah3xyst5vdjxqwdzxwzvwmdgardfuvnexvclmrcyi",
    ),
    262145: (
        "QmfPV3utDYFyAQU95Wu8jo3yCLYEdHcMa7y8qY4YfR9vaS",
        "bafybeicggd6pk7qqe6rwc2hixpwgpfmgcbrsofy7vtefqh7xzbur66st5y",
        "bafkreidhdlyyujjdmyuosq35pxncm3i4k3i2cmpxinmfynco47z6jlj43i",
    ),
    1048576: (
        "QmcVugSWPfPkc9ZBvccpbgqJNDrL5Wd9xD4MbMPMtA4158",
        "bafybeigjbqyfpwmskh5fqqwfrhrep5fkjzxlr7moaulrsoqz2vfk7pzmz4",
        "bafkreicwx5tl46n4tyqjmailbsigwoxcpujqzjtqrbvkkb2r7h3jtkvc7q",
    ),
    174 * 262144: (
        "QmSkyAkZ3rBCmVAxiPDFBYkGChtQm751Mb9W2Mgi3Uzkpq",
        "bafybeiadxqwt5nt5bidcuixxvm4vtgb243pm2tqabatwh2lold76qvbd5e",
        "bafybeiezm64mjxlaqdmqouj2v7qyjpqwx572v4nkusmitzb4tmjpe2aaxq",
    ),
    174 * 262144 + 1: (
        "QmTsP4hLNW22oeVSB1mmiXi2EfcpMqDqu79y1XF7NZBgCn",
        "bafybeihmfc6ryg3bkgtkz7wgjjglbpdpkedfzz5ktdpyi3swcckuu3wjby",
        "bafybeighfeqaohwmbhaz3negxcsqiebkx2g2c5mlc7lkmuhzj3x7sdt6b4",
    ),
    50 * MiB: (
        "QmXSGdLaRuVeonJSNkFp6U51mpmivz9mBPzKz9teJ5TZmf",
        "bafybeidouu3xd4h5cu2j76f6cxf5jkyc2gjdvmyelyy5xkuuiwoctl34gu",
        "bafybeiev7fsshzhq7anfjtarwr456urbane6ulmnkmnpbwmyvhpxj5zes4",
    ),
}


@pytest.fixture(scope="module")
def probe_50mib() -> bytes:
    return probe_bytes(50 * MiB)


class TestProbeTable:
    """Every cell of that table, through `bytes_cid` and through `file_cid` on a file."""

    @pytest.mark.parametrize("size", sorted(PROBE_TABLE))
    def test_bytes_cid(self, size: int, probe_50mib: bytes) -> None:
        data = probe_50mib[:size]
        v0, v1, v1_2025 = PROBE_TABLE[size]
        assert bytes_cid(data, "unixfs-v0-2015") == v0
        assert bytes_cid(data, "kubo-cidv1") == v1
        assert bytes_cid(data, "unixfs-v1-2025") == v1_2025
        assert bytes_cid(data) == v1_2025  # the default profile

    @pytest.mark.parametrize("size", [0, 262145, 174 * 262144 + 1])
    def test_file_cid(self, size: int, probe_50mib: bytes, tmp_path: Path) -> None:
        path = tmp_path / "f.bin"
        path.write_bytes(probe_50mib[:size])
        assert [file_cid(path, name) for name in ("unixfs-v0-2015", "kubo-cidv1", "unixfs-v1-2025")] == list(
            PROBE_TABLE[size]
        )

    def test_other_flavours(self, probe_50mib: bytes) -> None:
        # `--cid-version=1 --raw-leaves=false` (ipfs-unixfs-importer's dagpb-v1 mode): CIDv1 with dag-pb File leaves.
        dagpb_v1 = CIDV1.with_(name="dagpb-v1", raw_leaves=False)
        expected = "bafybeidgzkfplnfo6vh7jqm44vyp7l7uqdgyrhmoj72t62exyv4mnozgkm"
        assert bytes_cid(probe_50mib[:262145], dagpb_v1) == expected


class TestKuboFixtures:
    """kubo's fixtures, inputs rebuilt exactly (ChaCha20 over sha256(seed))."""

    def test_hello_world(self) -> None:
        assert bytes_cid(b"hello world", "unixfs-v0-2015") == "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD"
        assert bytes_cid(b"hello world", "kubo-cidv1") == "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
        assert bytes_cid(b"hello world") == "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
        no_raw = CIDV1.with_(name="v1-dagpb-leaves", raw_leaves=False)
        assert bytes_cid(b"hello world", no_raw) == "bafybeihykld7uyxzogax6vgyvag42y7464eywpf55gxi5qpoisibh3c5wa"

    @pytest.mark.parametrize(
        ("profile", "size", "seed", "expected"),
        [
            # legacy-cid-v0 / unixfs-v0-2015: 174 x 256 KiB (one level, 174 links) and one chunk more (rebalanced)
            (V0, 44544 * KiB, "v0-seed", "QmUbBALi174SnogsUzLpYbD4xPiBSFANF4iztWCsHbMKh2"),
            (V0, 44800 * KiB, "v0-seed", "QmepeWtdmS1hHXx1oZXsPUv6bMrfRRKfZcoPPU4eEfjnbf"),
            # legacy-cid-v0 with --max-file-links 1024: 256 MiB in one level
            (V0.with_(name="v0-1024", max_links=1024), 262144 * KiB, "hello world",
             "QmbBftNHWmjSWKLC49dMVrfnY8pjrJYntiAXirFJ7oJrNk"),
            # test-cid-v1: CIDv1, raw leaves, 1 MiB chunks, 174 links
            (CIDV1.with_(name="test-cid-v1", chunk_size=MiB), 174 * MiB, "v1-seed",
             "bafybeigwduxcf2aawppv3isnfeshnimkyplvw3hthxjhr2bdeje4tdaicu"),
            (CIDV1.with_(name="test-cid-v1", chunk_size=MiB), 175 * MiB, "v1-seed",
             "bafybeidhd7lo2n2v7lta5yamob3xwhbxcczmmtmhquwhjesi35jntf7mpu"),
            # unixfs-v1-2025: 1024 x 1 MiB (1 GiB, one level) and 1025 MiB (two levels), streamed
            (V1_2025, 1024 * MiB, "v1-2025-seed", "bafybeihmf37wcuvtx4hpu7he5zl5qaf2ineo2lqlfrapokkm5zzw7zyhvm"),
            (V1_2025, 1025 * MiB, "v1-2025-seed", "bafybeihmzokxxjqwxjcryerhp5ezpcog2wcawfryb2xm64xiakgm4a5jue"),
        ],
        ids=["v0-174", "v0-175", "v0-1024-links", "cid-v1-174", "cid-v1-175", "v1-2025-1GiB", "v1-2025-1025MiB"],
    )  # fmt: skip
    def test_file_fixture(self, profile: object, size: int, seed: str, expected: str) -> None:
        link = Importer(profile).add_reader(KuboRandomReader(size, seed))  # type: ignore[arg-type]
        assert str(link) == expected

    @pytest.mark.parametrize(
        ("profile", "count", "name_len", "last_len", "expected"),
        [
            # links estimation: 4096 x (30 + 34) = 262144, exactly at the threshold: stays flat under `>`
            (V0, 4096, 30, 30, "QmX5GtRk3TSSEHtdrykgqm4eqMEn3n2XhfkFAis5fjyZmN"),
            # kubo <= 0.39 (`>=`) sharded that same folder
            (V0.with_(name="kubo-0.39", hamt_inclusive=True), 4096, 30, 30,
             "QmWCW8YwPBGWx2DGftBBKeack73sRpxaFYSh9sGmxpgcKb"),
            # 4033 x (31 + 34) = 262145: one byte over, a HAMT
            (V0, 4033, 31, 31, "QmeMiJzmhpJAUgynAcxTQYek5PPKgdv3qEvFsdV3XpVnvP"),
            # block estimation: 4765 x 55 + 65 + 4 = 262144 bytes of dag-pb block, flat
            (V1_2025, 4766, 11, 21, "bafybeic3h7rwruealwxkacabdy45jivq2crwz6bufb5ljwupn36gicplx4"),
            # ... and 262145: a HAMT
            (V1_2025, 4766, 11, 22, "bafybeiegvuterwurhdtkikfhbxcldohmxp566vpjdofhzmnhv6o4freidu"),
        ],
        ids=["v0-at-threshold-flat", "v0-at-threshold-kubo-0.39", "v0-hamt", "v1-2025-at-threshold-flat",
             "v1-2025-hamt"],
    )  # fmt: skip
    def test_hamt_fixture(
        self, profile: object, count: int, name_len: int, last_len: int, expected: str, tmp_path: Path
    ) -> None:
        seed = "hamt-unixfs-v0-2015" if profile.cid_version == 0 else "hamt-unixfs-v1-2025"  # type: ignore[attr-defined]
        folder = make_kubo_hamt_dir(tmp_path / seed, count, name_len, last_len, seed)
        assert directory_cid(folder, profile) == expected  # type: ignore[arg-type]
