"""The stdio transport, driven by hand: a broken line gets a JSON-RPC error response and the
server keeps serving; stdout carries only JSON-RPC messages."""

from __future__ import annotations

import pytest

from notes_harness import PROTOCOL_VERSION, RawServer

PARSE_ERROR = -32700
INVALID_REQUEST = -32600


@pytest.fixture
def server(binary, workspace, errlog):
    raw = RawServer(binary, workspace.write_config(), errlog)
    yield raw
    if raw.proc.poll() is None:
        raw.close()


def assert_tools_list_works(server: RawServer, id: int) -> None:
    response = server.request(id, "tools/list")
    assert response.get("id") == id, response
    names = sorted(tool["name"] for tool in response["result"]["tools"])
    assert names == ["list_notes", "preview_note", "read_note"]


def test_accepts_handshake_and_clean_shutdown_on_eof(server):
    init = server.handshake()
    assert init["result"]["protocolVersion"] == PROTOCOL_VERSION
    assert init["result"]["serverInfo"]["name"] == "notes-server"
    assert_tools_list_works(server, 2)
    assert server.close() == 0


def test_rejects_non_json_line_with_parse_error(server):
    server.handshake()
    server.send_line("this is not json {")
    response = server.recv()
    assert response.get("jsonrpc") == "2.0", response
    assert "id" in response and response["id"] is None, response
    assert response["error"]["code"] == PARSE_ERROR, response
    assert_tools_list_works(server, 2)
    assert server.close() == 0


def test_rejects_wrong_shape_message_with_invalid_request(server):
    server.handshake()
    server.send_line('{"jsonrpc":"2.0","id":7,"method":5}')
    response = server.recv()
    assert response.get("jsonrpc") == "2.0", response
    assert response.get("id") == 7, response
    assert response["error"]["code"] == INVALID_REQUEST, response
    assert_tools_list_works(server, 8)
    assert server.close() == 0


def test_rejects_several_bad_lines_in_a_row_and_keeps_serving(server):
    server.handshake()
    for line in ("]", "null", "[]", '"text"', '{"jsonrpc":"2.0"}'):
        server.send_line(line)
        response = server.recv()
        assert response["error"]["code"] in (PARSE_ERROR, INVALID_REQUEST), (line, response)
    assert_tools_list_works(server, 30)
    assert server.close() == 0
