//! Dhan's error codes in plain words: the one table every message that shows a code reads.
//!
//! Codes come from Dhan's annexure (DH-9xx for the trading and account APIs, 8xx for data APIs)
//! and from what the live API was seen answering (reference §4.2 and §8b). Where a code means
//! different things on different routes (DH-905, DH-906), the text says both.

/// Plain words for a Dhan error code (`DH-905`, `806`), or `None` for a code not in the table.
pub fn explain(code: &str) -> Option<&'static str> {
    Some(match code.trim() {
        "DH-901" => "the access token is invalid or expired (each new token ends the previous one)",
        "DH-902" => "this account has no access to that API (Data APIs not subscribed, or Trading APIs not enabled)",
        "DH-903" => "a problem with the Dhan account itself (a segment not active, or the account not fully set up)",
        "DH-904" => "too many requests to Dhan in a short time; slow down",
        "DH-905" => {
            "Dhan refused the request as invalid: on RenewToken it means this kind of token cannot be renewed \
             (only Dhan Web tokens can); on orders it can mean the static IP does not match"
        }
        "DH-906" => {
            "an order error; with the words \"Invalid Token\" it means the token was replaced by a newer one or revoked"
        }
        "DH-907" => "Dhan could not fetch the data (or, for orders, the funds are insufficient)",
        "DH-908" => "an internal error at Dhan; trying again later usually works",
        "DH-909" => "a network error at Dhan; trying again later usually works",
        "DH-910" => "an unspecified error at Dhan",
        "DH-911" => "the request did not come from a static IP registered for this account (needed for orders)",
        "DH-1111" => "no holdings in the account (not an error)",
        "800" => "an internal error at Dhan's data service",
        "804" => "too many instruments requested at once",
        "805" => "too many requests to Dhan's data APIs; slow down",
        "806" => "Data APIs are not subscribed for this account",
        "807" => "the access token has expired",
        "808" => "authentication failed: the client id or the access token is invalid",
        "809" => "the access token is invalid",
        "810" => "the client id is invalid",
        "811" => "an invalid expiry date was sent",
        "812" => "an invalid date format was sent",
        "813" => "an invalid security id was sent",
        "814" => "an invalid request was sent",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::explain;

    #[test]
    fn every_code_a_user_can_see_has_words() {
        for n in 901..=911 {
            let code = format!("DH-{n}");
            assert!(explain(&code).is_some_and(|t| !t.is_empty()), "{code}");
        }
        for code in ["DH-1111", "800", "804", "805", "806", "807", "808", "809", "810", "811", "812", "813", "814"] {
            assert!(explain(code).is_some(), "{code}");
        }
        assert_eq!(explain("DH-999"), None);
    }
}
