//! Where a line may break between two grapheme clusters that no space separates.
//!
//! Spaced scripts (Latin, Hangul, Cyrillic, ...) break only at spaces; these rules add
//! the places inside a run of text where scripts written without spaces may break:
//!
//! - **Chinese and Japanese** break between any two characters, except that a line
//!   never starts with closing punctuation, a small kana or the prolonged sound mark
//!   (`。」ーッ`, ...) and never ends with opening punctuation or a currency sign
//!   (`「（￥`, ...): the common core of the JIS X 4051 line-start and line-end
//!   rules (*kinsoku*).
//! - **Thai** has no spaces between words and the project uses no dictionary, so it
//!   breaks only where a syllable surely begins: before a leading vowel (เ แ โ ใ ไ),
//!   or before a consonant that carries a vowel or tone mark or is followed by a
//!   following vowel (ะ า ๅ). Never after a leading vowel, never before a following
//!   vowel, ฯ, ๆ or a silenced consonant (with ์), and never inside a consonant
//!   cluster (กร, กล, กว, ขร, ..., จร, ทร, สร) or after a leading ห or อ (หม, อย). The
//!   rule finds fewer breaks than a dictionary would; every break it finds is a
//!   syllable boundary. A run with none is broken between grapheme clusters only
//!   when it is longer than a whole line.

/// Whether a line may break between the clusters `before` and `after` (`next` is the
/// cluster after `after`, if any).
pub(super) fn between(before: &str, after: &str, next: Option<&str>) -> bool {
    let (Some(last), Some(first)) = (before.chars().last(), after.chars().next()) else {
        return false;
    };
    let Some(lead) = before.chars().next() else {
        return false;
    };
    if is_thai(lead) && is_thai(first) {
        return thai_break(before, after, next);
    }
    (is_ideographic(last) || is_ideographic(first)) && !no_line_start(first) && !no_line_end(last)
}

/// Han, kana, bopomofo, CJK punctuation and the fullwidth forms: text written without
/// spaces, breakable between characters. Hangul is spaced and not included.
fn is_ideographic(c: char) -> bool {
    matches!(u32::from(c),
        0x2E80..=0x2FFF      // radicals, ideographic description
        | 0x3000..=0x303F    // CJK symbols and punctuation
        | 0x3040..=0x30FF    // hiragana, katakana
        | 0x3100..=0x312F    // bopomofo
        | 0x3190..=0x31FF    // kanbun, bopomofo extended, strokes, katakana extensions
        | 0x3200..=0x33FF    // enclosed CJK, CJK compatibility
        | 0x3400..=0x4DBF    // extension A
        | 0x4E00..=0x9FFF    // unified ideographs
        | 0xF900..=0xFAFF    // compatibility ideographs
        | 0xFE30..=0xFE4F    // compatibility forms
        | 0xFF00..=0xFFEF    // halfwidth and fullwidth forms
        | 0x20000..=0x3FFFF) // extensions B and later
}

/// Characters a line must not start with.
fn no_line_start(c: char) -> bool {
    const CJK: &str = "、。，．：；？！‼⁇⁈⁉ー‐゠–〜～…‥・）」』】〕〉》〙〗〟｝］｠’”％‰℃°′″\
        ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶㇰㇱㇲㇳㇴㇵㇶㇷㇸㇹㇺㇻㇼㇽㇾㇿ\
        々〻ゝゞヽヾ｡｣､･ｧｨｩｪｫｬｭｮｯｰ";
    ")]},.:;!?%".contains(c) || CJK.contains(c)
}

/// Characters a line must not end with.
fn no_line_end(c: char) -> bool {
    "([{（「『【〔〈《〘〖〝｛［｟‘“￥＄￡¥$£€₩￦#＃".contains(c)
}

fn is_thai(c: char) -> bool {
    ('\u{0E01}'..='\u{0E5B}').contains(&c)
}

fn is_thai_consonant(c: char) -> bool {
    ('\u{0E01}'..='\u{0E2E}').contains(&c)
}

/// เ แ โ ใ ไ: written before the consonant they follow in speech.
fn is_leading_vowel(c: char) -> bool {
    ('\u{0E40}'..='\u{0E44}').contains(&c)
}

/// ะ า ๅ: spacing vowels written after their consonant.
fn is_following_vowel(c: char) -> bool {
    matches!(c, 'ะ' | 'า' | 'ๅ')
}

/// Above and below vowels, mai taikhu, the tone marks, and sara am: marks that sit on
/// (or follow, for sara am) a syllable's initial consonant.
fn carries_vowel_or_tone(cluster: &str) -> bool {
    cluster
        .chars()
        .skip(1)
        .any(|c| matches!(c, '\u{0E31}' | 'ำ' | '\u{0E34}'..='\u{0E3A}' | '\u{0E47}'..='\u{0E4B}'))
}

/// Pairs of consonants read as one initial: true clusters, ร-clusters where ร is
/// silent, and the consonants led by ห or อ.
const THAI_INITIAL_PAIRS: &[&str] = &[
    "กร", "กล", "กว", "ขร", "ขล", "ขว", "คร", "คล", "คว", "ตร", "ปร", "ปล", "พร", "พล", "ผล", "จร",
    "ซร", "ศร", "สร", "ทร", "หง", "หญ", "หน", "หม", "หย", "หร", "หล", "หว", "อย",
];

fn thai_break(before: &str, after: &str, next: Option<&str>) -> bool {
    let (Some(b), Some(a)) = (before.chars().next(), after.chars().next()) else {
        return false;
    };
    if is_leading_vowel(b) || !is_thai(a) {
        return false;
    }
    if is_following_vowel(a) || matches!(a, 'ฯ' | 'ๆ') || after.contains('\u{0E4C}') {
        return false;
    }
    let next_first = next.and_then(|n| n.chars().next());
    let starts_syllable = is_leading_vowel(a)
        || (is_thai_consonant(a)
            && (carries_vowel_or_tone(after)
                || next_first.is_some_and(is_following_vowel)
                // The first of an initial pair whose second carries the vowel (หมู, อยู่).
                || (is_bare_consonant(after)
                    && next.is_some_and(carries_vowel_or_tone)
                    && next_first.is_some_and(|n| is_initial_pair(a, n)))));
    starts_syllable && !(is_bare_consonant(before) && is_initial_pair(b, a))
}

fn is_bare_consonant(cluster: &str) -> bool {
    let mut chars = cluster.chars();
    chars.next().is_some_and(is_thai_consonant) && chars.next().is_none()
}

fn is_initial_pair(first: char, second: char) -> bool {
    THAI_INITIAL_PAIRS.iter().any(|pair| {
        let mut chars = pair.chars();
        chars.next() == Some(first) && chars.next() == Some(second)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use unicode_segmentation::UnicodeSegmentation;

    /// Where the rules allow a break in `text`, marked with `|`.
    fn breaks(text: &str) -> String {
        let clusters: Vec<&str> = text.graphemes(true).collect();
        let mut out = String::new();
        for (i, cluster) in clusters.iter().enumerate() {
            if i > 0 && between(clusters[i - 1], cluster, clusters.get(i + 1).copied()) {
                out.push('|');
            }
            out.push_str(cluster);
        }
        out
    }

    #[test]
    fn cjk_breaks_between_characters_but_not_before_closing_marks() {
        assert_eq!(breaks("返金完了"), "返|金|完|了");
        assert_eq!(breaks("お待ちください。"), "お|待|ち|く|だ|さ|い。");
        assert_eq!(breaks("「返金」"), "「返|金」");
        assert_eq!(breaks("コード"), "コー|ド");
        assert_eq!(breaks("ちょっと"), "ちょっ|と");
        assert_eq!(breaks("返金ID重複"), "返|金|ID|重|複");
        assert_eq!(breaks("￥1,250"), "￥1,250");
        assert_eq!(breaks("交易超时，未退款"), "交|易|超|时，|未|退|款");
    }

    #[test]
    fn spaced_scripts_never_break_inside_a_word() {
        assert_eq!(breaks("Remboursement"), "Remboursement");
        assert_eq!(breaks("환불완료"), "환불완료");
        assert_eq!(breaks("e\u{301}te\u{301}"), "e\u{301}te\u{301}");
    }

    #[test]
    fn thai_breaks_only_at_syllable_starts() {
        // คืน|เงิน (refund), สำ|เร็จ (success), ขอบ|คุณ (thank you)
        assert_eq!(breaks("คืนเงินสำเร็จ"), "คืน|เงิน|สำ|เร็จ");
        assert_eq!(breaks("ขอบคุณ"), "ขอบ|คุณ");
        // ส|วัส|ดี: three syllables, the first with an inherent vowel.
        assert_eq!(breaks("สวัสดี"), "ส|วัส|ดี");
        // Clusters stay whole: กร in กรุณา, ปร in ประเทศ, หม in หมู, อย in อยู่.
        assert_eq!(breaks("กรุณา"), "กรุ|ณา");
        assert_eq!(breaks("ประเทศ"), "ประ|เทศ");
        assert_eq!(breaks("หมูอยู่"), "หมู|อยู่");
        assert_eq!(breaks("ขอบคุณครับ"), "ขอบ|คุณ|ครับ");
        // After a leading vowel, before a following vowel, before ์ and ๆ: never.
        assert_eq!(breaks("เรียน"), "เรียน");
        assert_eq!(breaks("จันทร์"), "จันทร์");
        assert_eq!(breaks("ต่างๆ"), "ต่างๆ");
    }
}
