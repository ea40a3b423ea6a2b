"""``mpp wallet``: keys go to the key store (encrypted file here), never to the config file,
stdout, stderr or argv; secrets come from a hidden prompt or standard input."""

from __future__ import annotations

import tomllib

from mpp_client.methods.tempo import LocalKeySigner
from mpp_client.wallet import EncryptedFileKeyStore

from .conftest import PASSPHRASE


def keystore(mpp) -> EncryptedFileKeyStore:
    return EncryptedFileKeyStore(mpp.data_dir / "keystore.json", passphrase=PASSPHRASE)


def test_create_puts_a_new_key_in_the_key_store_and_only_the_address_in_the_config(mpp):
    code, data = mpp.json("wallet", "create", "main", "--chain-id", "31337",
                          "--rpc-url", "http://127.0.0.1:8545")  # fmt: skip

    assert code == 0
    address = data["address"]
    secret = keystore(mpp).get("tempo/main")
    assert LocalKeySigner(secret.reveal()).address == address
    config = tomllib.loads(mpp.config_file.read_text())
    assert config["default_wallet"] == "main"
    assert config["wallets"]["main"] == {
        "method": "tempo",
        "key": "tempo/main",
        "chain_id": 31337,
        "rpc_url": "http://127.0.0.1:8545",
        "address": address,
    }
    raw_key = secret.reveal().removeprefix("0x")
    for path in (mpp.config_file, mpp.data_dir / "keystore.json"):
        assert raw_key not in path.read_text()
    assert oct(mpp.config_file.stat().st_mode & 0o777) == "0o600"


def test_list_and_show_need_no_passphrase(mpp):
    mpp("wallet", "create", "main")
    no_passphrase = {"MPP_KEYSTORE_PASSPHRASE_FILE": ""}

    listed = mpp("wallet", "list", env=no_passphrase)
    shown = mpp("--json", "wallet", "show", env=no_passphrase)

    assert listed.returncode == 0 and "* main" in listed.stdout and "tempo" in listed.stdout
    assert shown.returncode == 0
    assert '"method": "tempo"' in shown.stdout


def test_import_reads_the_key_from_stdin_and_never_prints_it(mpp):
    signer = LocalKeySigner.generate()
    key = signer.export_private_key()

    result = mpp("--json", "wallet", "import", "imported", "--method", "tempo", input=key + "\n")

    assert result.returncode == 0, result.stderr
    assert signer.address in result.stdout
    assert key not in result.stdout and key[2:] not in result.stderr
    assert keystore(mpp).get("tempo/imported").reveal() == key


def test_an_invalid_key_is_refused_without_echoing_it(mpp):
    result = mpp("wallet", "import", "bad", "--method", "tempo", input="0xnot-a-key-s3cr3t\n")

    assert result.returncode == 2
    assert "not a secp256k1 private key" in result.stderr
    assert "s3cr3t" not in result.stderr + result.stdout
    assert not mpp.config_file.exists()


def test_the_secret_is_taken_from_argv_only_with_the_insecure_flag(mpp):
    signer = LocalKeySigner.generate()
    key = signer.export_private_key()

    refused = mpp("wallet", "import", "w", "--method", "tempo", key)
    accepted = mpp("wallet", "import", "w", "--method", "tempo", "--insecure-secret-arg", key)

    assert refused.returncode == 2  # a stray positional argument is not taken as a secret
    assert accepted.returncode == 0
    assert "other users can see it" in accepted.stderr
    assert keystore(mpp).get("tempo/w").reveal() == key


def test_import_prompts_on_the_terminal_without_echo(mpp, terminal):
    signer = LocalKeySigner.generate()
    key = signer.export_private_key()

    term = terminal(mpp, "wallet", "import", "typed", "--method", "tempo")
    term.read_until(b"Tempo private key (hex): ")
    term.send(key + "\n")

    assert term.finish() == 0
    assert key.encode() not in term.output  # getpass turned echo off
    assert signer.address.encode() in term.output


def test_a_new_key_file_asks_for_its_passphrase_twice_on_the_terminal(mpp, terminal):
    term = terminal(mpp, "wallet", "create", "main", env={"MPP_KEYSTORE_PASSPHRASE_FILE": ""})
    term.read_until(b"New passphrase for the key file")
    term.send("typed passphrase\n")
    term.read_until(b"Repeat the passphrase: ")
    term.send("typed passphrase\n")

    assert term.finish() == 0
    assert b"typed passphrase" not in term.output
    store = EncryptedFileKeyStore(mpp.data_dir / "keystore.json", passphrase="typed passphrase")
    assert list(store.names()) == ["tempo/main"]


def test_mismatched_new_passphrases_store_nothing(mpp, terminal):
    term = terminal(mpp, "wallet", "create", "main", env={"MPP_KEYSTORE_PASSPHRASE_FILE": ""})
    term.read_until(b"New passphrase for the key file")
    term.send("one\n")
    term.read_until(b"Repeat the passphrase: ")
    term.send("two\n")

    assert term.finish() == 2
    assert b"do not match" in term.output
    assert not (mpp.data_dir / "keystore.json").exists()
    assert not mpp.config_file.exists()


def test_remove_deletes_the_wallet_and_its_secret(mpp):
    mpp("wallet", "create", "a")
    mpp("wallet", "create", "b")

    without_yes = mpp("wallet", "remove", "a")
    removed = mpp("wallet", "remove", "a", "--yes")

    assert without_yes.returncode == 2  # no terminal to confirm on
    assert removed.returncode == 0
    assert "tempo/a" not in keystore(mpp).names()
    config = tomllib.loads(mpp.config_file.read_text())
    assert list(config["wallets"]) == ["b"] and config["default_wallet"] == "b"


def test_lightning_import_stores_the_nwc_uri_in_the_key_store(mpp):
    uri = "nostr+walletconnect://" + "ab" * 32 + "?relay=wss%3A%2F%2Frelay.test&secret=" + "cd" * 32

    result = mpp("wallet", "import", "ln", "--method", "lightning", "--backend", "nwc",
                 "--network", "regtest", input=uri + "\n")  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert keystore(mpp).get("lightning/ln").reveal() == uri
    config = tomllib.loads(mpp.config_file.read_text())
    assert config["wallets"]["ln"]["backend"] == "nwc"
    assert "cd" * 32 not in mpp.config_file.read_text()


def test_a_duplicate_name_is_refused(mpp):
    mpp("wallet", "create", "main")

    again = mpp("wallet", "create", "main")

    assert again.returncode == 2 and "exists" in again.stderr
