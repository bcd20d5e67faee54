//! Several clients in one simulator: which client's state a request is about, and the totals.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::SimState;
use crate::config::{Account, SimClient, SimConfig};

/// The settings of another client: `base`'s knobs with the client's credentials.
fn client_config(base: &SimConfig, c: &SimClient) -> SimConfig {
    SimConfig {
        client_id: c.client_id.clone(),
        pin: c.pin.clone(),
        totp_secret: c.totp_secret.clone(),
        api_key: c.api_key.clone(),
        api_secret: c.api_secret.clone(),
        client_name: c.client_name.clone(),
        extra_clients: Vec::new(),
        ..base.clone()
    }
}

impl SimState {
    /// Fresh state.
    pub fn new(config: SimConfig) -> Self {
        let others = config
            .extra_clients
            .iter()
            .map(|c| {
                let mut st = Self::one(client_config(&config, c));
                st.account.static_ip = c.static_ip.clone();
                for v in std::iter::once(&mut st.account.fundlimit).chain(st.account.positions.iter_mut()) {
                    if let Some(obj) = v.as_object_mut() {
                        obj.insert("dhanClientId".into(), Value::String(c.client_id.clone()));
                    }
                }
                st
            })
            .collect();
        Self { others, ..Self::one(config) }
    }

    fn one(config: SimConfig) -> Self {
        Self {
            config,
            account: Account::default(),
            tokens: HashMap::new(),
            active: None,
            last_mint: None,
            consents: HashMap::new(),
            consents_today: Vec::new(),
            token_ids: HashMap::new(),
            recent_api_calls: VecDeque::new(),
            calls: HashMap::new(),
            call_log: VecDeque::new(),
            issued_count: 0,
            mint_count: 0,
            others: Vec::new(),
        }
    }

    /// Copies this client's knobs (lifetime, window, behaviours) to the other clients, keeping
    /// their credentials: a test's `update_config` applies to every client.
    fn sync_clients(&mut self) {
        for o in &mut self.others {
            let own = SimClient::credentials_of(&o.config);
            o.config = client_config(&self.config, &own);
        }
    }

    /// The state of the client with this id (the first client when no other has it, whose own
    /// checks then refuse an unknown id as Dhan would).
    pub fn client_mut(&mut self, client_id: Option<&str>) -> &mut SimState {
        self.find(|s| client_id == Some(s.config.client_id.as_str()))
    }

    /// The state of the client that was issued `token` (the first client for unknown tokens).
    pub fn by_token(&mut self, token: Option<&str>) -> &mut SimState {
        self.find(|s| token.is_some_and(|t| s.tokens.contains_key(t)))
    }

    /// The state of the client that generated `consent_id`.
    pub fn by_consent(&mut self, consent_id: &str) -> &mut SimState {
        self.find(|s| s.consents.contains_key(consent_id))
    }

    /// The state of the client whose login produced `token_id`.
    pub fn by_token_id(&mut self, token_id: Option<&str>) -> &mut SimState {
        self.find(|s| token_id.is_some_and(|t| s.token_ids.contains_key(t)))
    }

    fn find(&mut self, pick: impl Fn(&SimState) -> bool) -> &mut SimState {
        self.sync_clients();
        match self.others.iter().position(&pick) {
            Some(i) => &mut self.others[i],
            None => self,
        }
    }

    /// Every client's state, the first one first.
    pub fn clients(&self) -> impl Iterator<Item = &SimState> {
        std::iter::once(self).chain(self.others.iter())
    }

    /// Successful mints across every client.
    pub fn total_mints(&self) -> u64 {
        self.clients().map(|c| c.mint_count).sum()
    }

    /// Tokens issued across every client.
    pub fn total_issued(&self) -> u64 {
        self.clients().map(|c| c.issued_count).sum()
    }

    /// Forgets every client's last mint.
    pub fn reset_all_cooldowns(&mut self) {
        self.reset_cooldown();
        for o in &mut self.others {
            o.reset_cooldown();
        }
    }

    /// The state of the client with exactly this id, if the simulator serves it.
    pub fn client(&self, client_id: &str) -> Option<&SimState> {
        self.clients().find(|s| s.config.client_id == client_id)
    }

    /// The token that currently works, if any.
    pub fn active_token(&self, now: DateTime<Utc>) -> Option<String> {
        let t = self.active.as_ref()?;
        (self.tokens.get(t)?.expires_at > now).then(|| t.clone())
    }
}
