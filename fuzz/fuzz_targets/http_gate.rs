//! The HTTP gate's pre-check of a POST body (the body peek, the scope pre-check and the answers
//! to unreadable bodies), differentially against rmcp's own parse of the same body.
//!
//! The first byte chooses the caller: without grants, or holding `fixture:admin`. Properties:
//! - no panic; every answer is a `400`, `403` or `429` with a JSON-RPC error body, and a `403`
//!   carries a `WWW-Authenticate: Bearer error="insufficient_scope"` challenge;
//! - a body the gate passes on is either a JSON object or one rmcp can read as a message;
//! - a body rmcp reads as a `tools/call` of `admin_echo` from a caller without its grant is
//!   never passed on: the gate and rmcp agree on which tool is called;
//! - a caller holding every grant is never answered `403`;
//! - a body rmcp reads as `initialize` is one the gate lets make room for a session.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mcp_lp::__fuzz::GateCheck;
use mcp_lp::prelude::*;
use mcp_lp::{Config, Grant, Principal};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcMessage};
use serde_json::Value;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    text: String,
}

#[derive(Debug, Clone, Default)]
struct Fixture;

#[mcp_lp::server]
impl Fixture {
    /// Return the text.
    #[tool]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        args.text
    }

    /// Return the text; needs `fixture:admin`.
    #[tool(requires = "fixture:admin")]
    async fn admin_echo(&self, Parameters(args): Parameters<EchoArgs>) -> String {
        args.text
    }

    /// Once a minute per caller.
    #[tool(rate = "1/min")]
    async fn rare(&self) -> String {
        "ok".into()
    }
}

struct Setup {
    gate: GateCheck<Fixture>,
    nobody: Principal,
    admin: Principal,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| Setup {
        gate: GateCheck::new(Fixture, &Config::defaults()).unwrap(),
        nobody: Principal::new("nobody"),
        admin: Principal::new("admin").with_grant(Grant::new("fixture:admin").unwrap()),
    })
}

fuzz_target!(|data: &[u8]| {
    let setup = setup();
    let [who, body @ ..] = data else {
        return;
    };
    let admin = who & 1 == 1;
    let principal = if admin { &setup.admin } else { &setup.nobody };
    let answer = setup.gate.precheck(principal, body);
    let rmcp = serde_json::from_slice::<ClientJsonRpcMessage>(body).ok();
    let call_of = |name: &str| {
        matches!(&rmcp, Some(JsonRpcMessage::Request(r))
            if matches!(&r.request, ClientRequest::CallToolRequest(c) if c.params.name == name))
    };

    match &answer {
        None => {
            let object = body.trim_ascii_start().first() == Some(&b'{');
            assert!(
                object || rmcp.is_some(),
                "passed on a body rmcp cannot read"
            );
            assert!(
                admin || !call_of("admin_echo"),
                "passed on a call the caller may not make"
            );
        }
        Some((status, headers, bytes)) => {
            let body: Value = serde_json::from_slice(bytes).expect("a JSON answer");
            assert_eq!(body["jsonrpc"], "2.0", "{body}");
            let code = body["error"]["code"].as_i64().expect("an error code");
            match status {
                400 => assert!([-32700, -32600, -32602].contains(&code), "{body}"),
                403 => {
                    assert!(!admin, "a caller holding every grant was refused: {body}");
                    let challenge = headers["www-authenticate"].to_str().unwrap();
                    assert!(
                        challenge.contains("error=\"insufficient_scope\""),
                        "{challenge}"
                    );
                    assert!(challenge.contains("scope=\"fixture:admin\""), "{challenge}");
                }
                429 => assert!(headers.contains_key("retry-after")),
                other => panic!("unexpected status {other}: {body}"),
            }
        }
    }

    let initialize = matches!(&rmcp, Some(JsonRpcMessage::Request(r))
        if matches!(r.request, ClientRequest::InitializeRequest(_)));
    if initialize {
        assert!(
            GateCheck::<Fixture>::opens_session(body),
            "initialize without making room"
        );
    }
});
