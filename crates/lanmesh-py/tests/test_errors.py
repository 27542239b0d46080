"""Bad input gives the documented exception, with the command line's text, and the peer
(and every other peer) carries on."""

from __future__ import annotations

import pytest

import lanmesh
from conftest import cli


class Unencodable:
    pass


@pytest.mark.parametrize("value", [{1, 2}, Unencodable(), object(), {"nested": b"bytes"}, 1j])
def test_values_that_are_neither_bytes_text_nor_json_are_a_type_error_naming_the_type(router, value):
    with lanmesh.Peer("A", router=router.address) as a, lanmesh.Peer("B", router=router.address) as b:
        for send in (lambda: a.send("B", value), lambda: a.send_acked("B", value), lambda: a.broadcast(value)):
            with pytest.raises(TypeError) as e:
                send()
            assert type(value).__name__ in str(e.value)
        with pytest.raises(TypeError):
            a.request("B", value, timeout=1)
        # Nothing half-sent: the next message is the next one B sees.
        a.send_acked("B", "still fine")
        assert b.recv(timeout=5).data == "still fine"


def test_not_a_number_is_refused_rather_than_sent_as_invalid_json(router):
    with lanmesh.Peer("A", router=router.address) as a:
        with pytest.raises(ValueError):
            a.send("A", float("nan"))


def test_an_oversized_payload_is_too_large_before_anything_is_sent(router):
    big = bytes(64 * 1024 * 1024 + 1)
    with lanmesh.Peer("A", router=router.address) as a, lanmesh.Peer("B", router=router.address) as b:
        for send in (lambda: a.send("B", big), lambda: a.send_acked("B", big)):
            with pytest.raises(lanmesh.TooLarge) as e:
                send()
            assert str(e.value) == f"message of {len(big)} bytes exceeds the limit of {64 * 1024 * 1024}"
            assert isinstance(e.value, ValueError)
        a.send_acked("B", b"small")
        assert b.recv(timeout=5).data == b"small"


def test_unknown_names_raise_unknown_peer_with_the_cli_text(cli_router):
    with lanmesh.Peer("A", router=cli_router) as a:
        with pytest.raises(lanmesh.UnknownPeer) as acked:
            a.send_acked("nobody", "hello")
        with pytest.raises(lanmesh.UnknownPeer) as req:
            a.request("nobody", "hello", timeout=2)
    assert acked.value.peer == "nobody" and isinstance(acked.value, LookupError)
    out = cli("send", "--router", cli_router, "--name", "C", "--ack", "nobody", "hello")
    assert out.returncode == 1
    assert out.stderr.decode().strip() == f"lanmesh: {acked.value}"
    assert str(req.value) == str(acked.value) == 'unknown peer "nobody"'


@pytest.mark.parametrize("name", ["", "has space", "x" * 65, "new\nline"])
def test_invalid_names_are_invalid_argument(router, name):
    with pytest.raises(lanmesh.InvalidArgument):
        lanmesh.Peer(name, router=router.address)


def test_a_wrong_or_missing_mesh_key_is_refused(tmp_path):
    key = lanmesh.keygen()
    assert len(key) == 64 and int(key, 16) >= 0
    key_file = tmp_path / "mesh.key"
    key_file.write_text(key + "\n")
    with lanmesh.Router("127.0.0.1:0", mdns=False, mesh_key=key_file) as r:
        for wrong in (None, bytes(32), lanmesh.keygen()):
            with pytest.raises(lanmesh.MeshKeyRefused) as e:
                lanmesh.Peer("A", router=r.address, mesh_key=wrong)
            assert "mesh key" in str(e.value)
            assert isinstance(e.value, lanmesh.HandshakeFailed)
        for right in (key, bytes.fromhex(key), key_file, str(key_file)):
            with lanmesh.Peer("A", router=r.address, mesh_key=right) as a:
                assert a.peers() == ["A"]
    with pytest.raises(ValueError):
        lanmesh.Peer("A", router="127.0.0.1:1", mesh_key=b"short")


def test_another_mesh_is_refused(router):
    with pytest.raises(lanmesh.Refused) as e:
        lanmesh.Peer("A", router=router.address, mesh="office")
    assert "mesh" in str(e.value)


def test_a_name_held_by_another_key_is_name_taken(router, tmp_path):
    with lanmesh.Peer("owner", router=router.address):
        with pytest.raises(lanmesh.NameTaken) as e:
            lanmesh.Peer("owner", router=router.address, identity=tmp_path / "other.key")
        assert 'name "owner" belongs to another key' in str(e.value)
        assert isinstance(e.value, lanmesh.Refused)


def test_no_router_at_the_address_is_connect_failed():
    with pytest.raises(lanmesh.ConnectFailed) as e:
        lanmesh.Peer("A", router="127.0.0.1:1")
    assert isinstance(e.value, ConnectionError)
    assert str(e.value).startswith("cannot connect to router at 127.0.0.1:1")


def test_wrong_argument_types_are_type_errors(router):
    with lanmesh.Peer("A", router=router.address) as a:
        with pytest.raises(TypeError):
            a.send(42, "to a number?")
        with pytest.raises(ValueError):
            a.recv(timeout=-1)
        with pytest.raises(ValueError):
            lanmesh.Peer("B", router=router.address, cipher="rot13")
        with pytest.raises(TypeError):
            a.on_message = "not callable"
        with pytest.raises(TypeError):
            a.respond(3)


def test_an_unconnected_subclass_says_what_is_missing():
    class Forgetful(lanmesh.Peer):
        def __init__(self):
            pass  # never calls super().__init__

    p = Forgetful()
    with pytest.raises(lanmesh.Error) as e:
        p.send("x", "y")
    assert "super().__init__" in str(e.value)
