//! Exact money: decimal amounts with up to four fractional digits, kept as integers scaled
//! by 10^4, so sums are exact. Accepted as a JSON number (`19.99`) or string (`"19.99"`),
//! always shown as a string (`"19.99"`).

use serde_json::Value;

/// Largest amount accepted: one billion.
pub const MAX_AMOUNT_E4: i64 = 1_000_000_000 * 10_000;

/// Parses a non-negative decimal amount; at most 4 fractional digits, at most one billion.
pub fn parse_amount(value: &Value, field: &str) -> Result<i64, String> {
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        _ => return Err(format!("{field} must be a decimal number, e.g. 19.99")),
    };
    let bad = || format!("{field} must be a decimal from 0 to 1000000000 with at most 4 decimals, e.g. 19.99");
    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
    if whole.is_empty() || whole.len() > 10 || frac.len() > 4 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || (text.contains('.') && frac.is_empty()) {
        return Err(bad());
    }
    let whole: i64 = whole.parse().map_err(|_| bad())?;
    let frac: i64 = if frac.is_empty() { 0 } else { format!("{frac:0<4}").parse().map_err(|_| bad())? };
    let e4 = whole.checked_mul(10_000).and_then(|w| w.checked_add(frac)).ok_or_else(bad)?;
    if e4 > MAX_AMOUNT_E4 {
        return Err(bad());
    }
    Ok(e4)
}

/// `199900` → `"19.99"`: at least two decimals, more only when needed.
pub fn format_amount(e4: impl Into<i128>) -> String {
    let e4: i128 = e4.into();
    let sign = if e4 < 0 { "-" } else { "" };
    let e4 = e4.unsigned_abs();
    let (whole, frac) = (e4 / 10_000, e4 % 10_000);
    let mut frac = format!("{frac:04}");
    while frac.len() > 2 && frac.ends_with('0') {
        frac.pop();
    }
    format!("{sign}{whole}.{frac}")
}

/// An ISO 4217-shaped currency code: three ASCII capitals.
pub fn check_currency(currency: &str) -> Result<(), String> {
    if currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err("currency must be a three-letter ISO 4217 code in capitals, e.g. EUR".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_are_exact() {
        assert_eq!(parse_amount(&json!(19.99), "a").unwrap(), 199_900);
        assert_eq!(parse_amount(&json!("19.99"), "a").unwrap(), 199_900);
        assert_eq!(parse_amount(&json!(5), "a").unwrap(), 50_000);
        assert_eq!(parse_amount(&json!("0.0001"), "a").unwrap(), 1);
        assert_eq!(parse_amount(&json!(1_000_000_000), "a").unwrap(), MAX_AMOUNT_E4);
        for bad in [
            json!(-1),
            json!("1.23456"),
            json!("abc"),
            json!("1."),
            json!(".5"),
            json!(true),
            json!(1e12),
            json!("1e3"),
        ] {
            assert!(parse_amount(&bad, "amount").unwrap_err().contains("amount"), "{bad}");
        }
        assert_eq!(format_amount(199_900), "19.99");
        assert_eq!(format_amount(50_000), "5.00");
        assert_eq!(format_amount(12_345), "1.2345");
        assert_eq!(format_amount(3 * 199_900), "59.97");
        assert!(check_currency("EUR").is_ok());
        assert!(check_currency("eur").is_err() && check_currency("EURO").is_err());
    }
}
