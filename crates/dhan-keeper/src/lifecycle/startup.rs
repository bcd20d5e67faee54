//! Checks made once at start that need the keeper's clock, Dhan and Telegram: the machine's
//! clock against Dhan's, and how far the exchange calendar reaches.

use crate::config::MarketChoice;
use crate::telegram::html::escape;

use super::Keeper;

impl Keeper {
    /// Compares this machine's clock with Dhan's `Date` header; warns (log and Telegram) when
    /// they disagree enough to break TOTP.
    pub async fn check_clock(&self) {
        let sent_at = self.clock.now();
        let Ok(probe) = self.dhan.probe_auth().await else { return };
        let Some(offset) = probe.clock_offset_secs(sent_at) else { return };
        if offset.abs() <= crate::dhan::Probe::CLOCK_FAIL_SECS {
            tracing::debug!(offset_secs = offset, "clock agrees with Dhan's");
            return;
        }
        let side = if offset > 0.0 { "behind" } else { "ahead of" };
        tracing::warn!(
            offset_secs = offset,
            "this machine's clock is {:.0} s {side} Dhan's; TOTP codes will be refused. Enable NTP (timedatectl set-ntp true)",
            offset.abs()
        );
        self.notice(
            format!(
                "⏰ <b>This machine's clock is {:.0} s {side} Dhan's.</b> TOTP codes depend on the time, so minting will fail. Enable NTP (<code>timedatectl set-ntp true</code>), then check with <code>dhan-keeper check</code>.",
                offset.abs()
            ),
            vec![],
        );
    }

    /// At start, says why nothing will be minted when Dhan refused these credentials before.
    pub fn credential_stop_notice(&self) {
        if let (crate::config::Mode::Automatic, Some(stop)) = (self.cfg.mode(), self.credential_stop()) {
            tracing::warn!(
                refused_at = %crate::ist::human(&stop.at),
                message = %stop.message,
                "automatic minting is stopped: Dhan refused these credentials; fix pin, totp_secret or client_id in the \
                 config (the stop lifts when they change), or send /refresh on Telegram to try once more"
            );
        }
    }

    /// When the calendar the rotations rely on ends within 30 days: a log warning at every
    /// start, and a Telegram message once per end date.
    pub fn calendar_notice(&self) {
        let Some(MarketChoice::Segments(segs)) = self.cfg.market_hours else { return };
        let today = crate::ist::to_ist(&self.clock.now()).date_naive();
        let Some((end, notice)) = crate::calendar::end_notice(&self.cfg.calendar, segs, today) else { return };
        tracing::warn!("{notice}");
        if self.alert_chat().is_some() && self.state.get().calendar_notice_for != Some(end) {
            self.notice(format!("📅 {}", escape(&notice)), vec![]);
            self.state.update(|s| s.calendar_notice_for = Some(end));
        }
    }
}
