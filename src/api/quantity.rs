//! Resource quantities ("500m", "2", "1Gi", "1e3") added up exactly, as a PodGroup's
//! `minResources` needs: parsed into nano-units (an `i128` holds every quantity Kubernetes
//! accepts), summed with overflow checks, printed in a form the API server reads back.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Longest quantity text parsed (the API server's are far shorter).
const MAX_LEN: usize = 64;
const NANO: i128 = 1_000_000_000;

/// The value of `q` in nano-units; None when it is not a quantity (or too large).
pub fn nanos(q: &Quantity) -> Option<i128> {
    let text = q.0.trim();
    if text.is_empty() || text.len() > MAX_LEN {
        return None;
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-')))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let scale: i128 = match suffix {
        "" => NANO,
        "n" => 1,
        "u" => 1_000,
        "m" => 1_000_000,
        "k" => NANO * 1_000,
        "M" => NANO * 1_000_000,
        "G" => NANO * 1_000_000_000,
        "T" => NANO * 1_000_000_000_000,
        "P" => NANO * 1_000_000_000_000_000,
        "E" => NANO * 1_000_000_000_000_000_000,
        "Ki" => NANO << 10,
        "Mi" => NANO << 20,
        "Gi" => NANO << 30,
        "Ti" => NANO << 40,
        "Pi" => NANO << 50,
        "Ei" => NANO << 60,
        exponent => {
            let e: u32 = exponent
                .strip_prefix(['e', 'E'])?
                .parse()
                .ok()
                .filter(|e| *e <= 18)?;
            NANO.checked_mul(10i128.pow(e))?
        }
    };
    scaled(number, scale)
}

/// `number` (digits with at most one '.', optionally signed) times `scale`, rounded up to a
/// whole nano-unit as Kubernetes rounds quantities up.
fn scaled(number: &str, scale: i128) -> Option<i128> {
    let (negative, digits) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let mut value: i128 = 0;
    let mut divisor: i128 = 1;
    for c in whole.chars() {
        value = value
            .checked_mul(10)?
            .checked_add(i128::from(c as u8 - b'0'))?;
    }
    for c in fraction.chars().take(27) {
        value = value
            .checked_mul(10)?
            .checked_add(i128::from(c as u8 - b'0'))?;
        divisor = divisor.checked_mul(10)?;
    }
    let product = value.checked_mul(scale)?;
    let rounded_up = product / divisor + i128::from(product % divisor != 0);
    Some(if negative { -rounded_up } else { rounded_up })
}

/// `nanos` as a quantity: whole units when it has no fraction, else milli-units, else nano.
pub fn format(nanos: i128) -> Quantity {
    Quantity(if nanos % NANO == 0 {
        (nanos / NANO).to_string()
    } else if nanos % 1_000_000 == 0 {
        format!("{}m", nanos / 1_000_000)
    } else {
        format!("{nanos}n")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Option<i128> {
        nanos(&Quantity(s.into()))
    }

    #[test]
    fn quantities_parse_as_kubernetes_writes_them() {
        assert_eq!(q("1"), Some(NANO));
        assert_eq!(q("500m"), Some(NANO / 2));
        assert_eq!(q("1.5"), Some(3 * NANO / 2));
        assert_eq!(q("1Gi"), Some(NANO << 30));
        assert_eq!(q("2k"), Some(2_000 * NANO));
        assert_eq!(q("1e3"), Some(1_000 * NANO));
        assert_eq!(q("0.1m"), Some(100_000));
        for bad in ["", "abc", "1..2", "1Xi", "1e99", "--1"] {
            assert_eq!(q(bad), None, "{bad}");
        }
    }

    #[test]
    fn sums_print_back_in_a_readable_form() {
        let sum = q("1").unwrap_or_default() + q("500m").unwrap_or_default();
        assert_eq!(format(sum).0, "1500m");
        assert_eq!(format(q("1Gi").unwrap_or_default() * 2).0, "2147483648");
        assert_eq!(format(q("4").unwrap_or_default()).0, "4");
    }
}
