//! Transport failures in words a trader understands.
//!
//! reqwest's error chain reads like `error sending request: client error (SendRequest):
//! connection closed before message completed`: true, but jargon, and it reached the trader's
//! Telegram verbatim. This turns the chain into what happened ("Dhan closed the connection before
//! answering"); the full chain still goes to the debug log for whoever debugs it.

/// What `chain` (an error and its sources, joined by `: `) means, in plain words.
pub(crate) fn describe(chain: &str, is_connect: bool) -> String {
    let lower = chain.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    if has(&["dns error", "failed to lookup", "name or service not known", "no such host", "nodename nor servname"]) {
        "the host name could not be looked up (DNS); check the internet connection".into()
    } else if has(&["cannot assign requested address", "address not available", "can't assign requested address"]) {
        "this machine does not have the address `bind_address` asks calls to leave from (see: ip -brief address)".into()
    } else if has(&["connection refused"]) {
        "the connection was refused (nothing is listening there)".into()
    } else if has(&["certificate", "tls", "handshake"]) {
        "the secure (TLS) connection could not be set up; check the system clock and any proxy".into()
    } else if has(&["connection reset", "broken pipe"]) {
        "the connection was cut off (reset) before an answer arrived".into()
    } else if has(&["connection closed", "incomplete message", "unexpected eof", "end of file"]) {
        "the connection closed before an answer arrived".into()
    } else if has(&["network is unreachable", "no route to host", "host is unreachable"]) {
        "there is no network route to Dhan; check the internet connection".into()
    } else if has(&["timed out", "timeout"]) {
        "the connection timed out".into()
    } else if is_connect {
        "could not connect".into()
    } else {
        "the connection failed before an answer arrived".into()
    }
}

/// [`describe`] for a reqwest error (without its URL, which never reaches a message).
pub(crate) fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut chain = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        chain = format!("{chain}: {s}");
        src = s.source();
    }
    tracing::debug!(error = %chain, "transport error");
    describe(&chain, e.is_connect())
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn transport_jargon_becomes_words() {
        let table = [
            (
                "error sending request: client error (SendRequest): connection closed before message completed",
                false,
                "the connection closed before an answer arrived",
            ),
            (
                "error sending request: client error (Connect): tcp connect error: Connection refused (os error 111)",
                true,
                "the connection was refused (nothing is listening there)",
            ),
            ("error sending request: client error (Connect): dns error: failed to lookup address", true, "DNS"),
            ("error sending request: connection reset by peer (os error 104)", false, "cut off (reset)"),
            ("error sending request: invalid peer certificate: UnknownIssuer", true, "TLS"),
            (
                "error sending request: client error (Connect): tcp bind local error: Cannot assign requested address \
                 (os error 99)",
                true,
                "does not have the address `bind_address`",
            ),
            ("something new", true, "could not connect"),
            ("something new", false, "the connection failed"),
        ];
        for (chain, connect, want) in table {
            let got = describe(chain, connect);
            assert!(got.contains(want), "{chain} → {got}");
            for jargon in ["SendRequest", "client error", "os error"] {
                assert!(!got.contains(jargon), "{got}");
            }
        }
    }
}
