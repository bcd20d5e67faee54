//! A trader's account at a glance: funds, holdings and positions rendered as short text lines,
//! with rupee amounts grouped the Indian way (₹1,13,642.00).

use crate::dhan::{FundLimit, Holding, Position};

/// Formats rupees with lakh/crore grouping: `₹12,34,567.89`, `-₹500.00`.
pub fn rupees(amount: f64) -> String {
    if !amount.is_finite() {
        return "₹–".into();
    }
    let sign = if amount < 0.0 { "-" } else { "" };
    let paise = (amount.abs() * 100.0).round() as u128;
    let (whole, frac) = (paise / 100, paise % 100);
    let digits = whole.to_string();
    let grouped = if digits.len() <= 3 {
        digits
    } else {
        let (head, last3) = digits.split_at(digits.len() - 3);
        let mut parts: Vec<&str> = Vec::new();
        let mut rest = head;
        while rest.len() > 2 {
            let (a, b) = rest.split_at(rest.len() - 2);
            parts.push(b);
            rest = a;
        }
        if !rest.is_empty() {
            parts.push(rest);
        }
        parts.reverse();
        format!("{},{last3}", parts.join(","))
    };
    format!("{sign}₹{grouped}.{frac:02}")
}

/// The account summary, one section per block, top holdings by value (at most `top`).
pub fn summary(funds: &FundLimit, holdings: &[Holding], positions: &[Position], top: usize) -> Vec<String> {
    let mut out = vec![format!(
        "💰 Funds\nAvailable   {}\nUtilised    {}\nWithdrawable {}",
        rupees(funds.available_balance),
        rupees(funds.utilized_amount),
        rupees(funds.withdrawable_balance)
    )];
    if holdings.is_empty() {
        out.push("📦 Holdings\nNo holdings".into());
    } else {
        let cost: f64 = holdings.iter().map(Holding::cost_value).sum();
        let mut sorted: Vec<&Holding> = holdings.iter().collect();
        sorted.sort_by(|a, b| b.value().total_cmp(&a.value()));
        let mut block = format!("📦 Holdings: {} (cost {})", holdings.len(), rupees(cost));
        for h in sorted.iter().take(top) {
            block.push_str(&format!("\n• {} × {} = {}", h.trading_symbol, h.total_qty, rupees(h.value())));
        }
        if holdings.len() > top {
            block.push_str(&format!("\n… and {} more", holdings.len() - top));
        }
        out.push(block);
    }
    let open = positions.iter().filter(|p| p.net_qty != 0.0).count();
    let realized: f64 = positions.iter().map(|p| p.realized_profit).sum();
    let unrealized: f64 = positions.iter().map(|p| p.unrealized_profit).sum();
    out.push(format!(
        "📈 Positions: {} open\nRealised    {}\nUnrealised  {}",
        open,
        rupees(realized),
        rupees(unrealized)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rupees_use_indian_grouping() {
        assert_eq!(rupees(113_642.0), "₹1,13,642.00");
        assert_eq!(rupees(12_345_678.9), "₹1,23,45,678.90");
        assert_eq!(rupees(999.5), "₹999.50");
        assert_eq!(rupees(-1500.0), "-₹1,500.00");
        assert_eq!(rupees(f64::NAN), "₹–");
    }

    #[test]
    fn empty_portfolio_reads_no_holdings() {
        let s = summary(&FundLimit::default(), &[], &[], 5);
        assert!(s[1].contains("No holdings"));
        assert!(s[2].contains("0 open"));
    }
}
