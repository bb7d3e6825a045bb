//! Japanese and English: the language a request is answered in (the switch's cookie, else the
//! browser's Accept-Language, else Japanese) and every text of the pages, checked by the
//! compiler (one field per text, both languages filled).

/// A language of the panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ja,
    En,
}

/// The cookie the language switch sets.
pub const LANG_COOKIE: &str = "oem_panel_lang";

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }

    pub fn from_code(code: &str) -> Option<Lang> {
        match code {
            "ja" => Some(Lang::Ja),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language the switch offers.
    pub fn other(self) -> Lang {
        match self {
            Lang::Ja => Lang::En,
            Lang::En => Lang::Ja,
        }
    }

    /// The switch's choice, else the first of Japanese or English the browser accepts (by
    /// q-value), else Japanese.
    pub fn negotiate(cookie: Option<&str>, accept_language: Option<&str>) -> Lang {
        if let Some(lang) = cookie.and_then(Lang::from_code) {
            return lang;
        }
        let mut best: Option<(f32, Lang)> = None;
        for item in accept_language.unwrap_or_default().split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q=").map(str::to_owned))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or_default();
            let Some(lang) = Lang::from_code(primary) else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        best.map(|(_, lang)| lang).unwrap_or(Lang::Ja)
    }

    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::Ja => &JA,
            Lang::En => &EN,
        }
    }
}

/// Every text of the pages.
pub struct Texts {
    pub language_name: &'static str,
    pub login_title: &'static str,
    pub login_id: &'static str,
    pub password: &'static str,
    pub login_button: &'static str,
    pub login_failed: &'static str,
    pub login_locked: &'static str,
    pub logged_out: &'static str,
    pub password_changed_login_again: &'static str,
    pub session_ended: &'static str,
    pub logout: &'static str,
    pub overview: &'static str,
    pub credentials: &'static str,
    pub change_password: &'static str,
    pub phase: &'static str,
    pub services: &'static str,
    pub service: &'static str,
    pub state: &'static str,
    pub since: &'static str,
    pub detail: &'static str,
    pub up: &'static str,
    pub down: &'static str,
    pub unknown: &'static str,
    pub not_probed_yet: &'static str,
    pub course: &'static str,
    pub limits: &'static str,
    pub domains: &'static str,
    pub mail_accounts: &'static str,
    pub databases: &'static str,
    pub ftp_accounts: &'static str,
    pub cpu: &'static str,
    pub memory: &'static str,
    pub disk: &'static str,
    pub bandwidth: &'static str,
    pub php_version: &'static str,
    pub php_note: &'static str,
    pub usage: &'static str,
    pub used: &'static str,
    pub allowed: &'static str,
    pub traffic_in: &'static str,
    pub traffic_out: &'static str,
    pub not_measured: &'static str,
    pub measured_at: &'static str,
    pub dns_title: &'static str,
    pub dns_intro: &'static str,
    pub host: &'static str,
    pub record_type: &'static str,
    pub value: &'static str,
    pub dns_unset: &'static str,
    pub no_domains: &'static str,
    pub incidents_open: &'static str,
    pub incidents_past: &'static str,
    pub maintenance_title: &'static str,
    pub maintenance_none: &'static str,
    pub maintenance_start: &'static str,
    pub maintenance_end: &'static str,
    pub maintenance_work: &'static str,
    pub maintenance_every_service: &'static str,
    pub maintenance_scheduled: &'static str,
    pub maintenance_open: &'static str,
    pub started: &'static str,
    pub resolved: &'static str,
    pub none: &'static str,
    pub user_name: &'static str,
    pub database_name: &'static str,
    pub address: &'static str,
    pub ftp: &'static str,
    pub mail: &'static str,
    pub database: &'static str,
    pub rotate: &'static str,
    pub rotate_note: &'static str,
    pub rotated: &'static str,
    pub not_provisioned: &'static str,
    pub current_password: &'static str,
    pub new_password: &'static str,
    pub confirm_password: &'static str,
    pub save: &'static str,
    pub password_rules: &'static str,
    pub password_mismatch: &'static str,
    pub password_too_short: &'static str,
    pub password_wrong: &'static str,
    pub service_unavailable: &'static str,
    pub php_title: &'static str,
    pub php_current: &'static str,
    pub php_choose: &'static str,
    pub php_save: &'static str,
    pub php_saved: &'static str,
    pub php_not_allowed: &'static str,
    pub php_managed_elsewhere: &'static str,
    pub php_only_one: &'static str,
    pub phase_scheduled: &'static str,
    pub phase_provisioning: &'static str,
    pub phase_active: &'static str,
    pub phase_suspended: &'static str,
    pub phase_degraded: &'static str,
    pub phase_terminating: &'static str,
    pub incident_open: &'static str,
    pub incident_notified: &'static str,
    pub incident_remediating: &'static str,
    pub incident_resolved: &'static str,
    pub incident_reported: &'static str,
    pub kind_service_down: &'static str,
    pub kind_host_down: &'static str,
    pub kind_mass_mail: &'static str,
}

pub static JA: Texts = Texts {
    language_name: "日本語",
    login_title: "ログイン",
    login_id: "ログインID",
    password: "パスワード",
    login_button: "ログイン",
    login_failed: "ログインIDまたはパスワードが違います。",
    login_locked: "パスワードの誤りが続いたため、しばらくログインできません。時間をおいてお試しいただくか、ご契約のサポート窓口にお問い合わせください。",
    logged_out: "ログアウトしました。",
    password_changed_login_again: "パスワードを変更しました。新しいパスワードでログインしてください。",
    session_ended: "セッションが終了しました。もう一度ログインしてください。",
    logout: "ログアウト",
    overview: "概要",
    credentials: "接続情報",
    change_password: "パスワード変更",
    phase: "状態",
    services: "サービス",
    service: "サービス",
    state: "状態",
    since: "この状態になった時刻",
    detail: "詳細",
    up: "稼働中",
    down: "停止中",
    unknown: "未確認",
    not_probed_yet: "まだ監視結果がありません。",
    course: "コース",
    limits: "上限",
    domains: "ドメイン",
    mail_accounts: "メールアカウント",
    databases: "データベース",
    ftp_accounts: "FTPアカウント",
    cpu: "CPU",
    memory: "メモリ",
    disk: "ディスク",
    bandwidth: "帯域",
    php_version: "PHPバージョン",
    php_note: "コースで選べるPHPバージョンは「PHPバージョン」で変更できます。",
    usage: "使用量",
    used: "使用中",
    allowed: "上限",
    traffic_in: "今月の受信量",
    traffic_out: "今月の送信量",
    not_measured: "未計測",
    measured_at: "計測時刻",
    dns_title: "ドメインとDNSレコード",
    dns_intro: "各ドメインのDNSに次のレコードを設定してください。",
    host: "ホスト名",
    record_type: "種類",
    value: "値",
    dns_unset: "(設定先はサポート窓口にお問い合わせください)",
    no_domains: "ドメインはまだありません。",
    incidents_open: "対応中の障害",
    incidents_past: "過去の障害",
    maintenance_title: "メンテナンスのお知らせ",
    maintenance_none: "予定されているメンテナンスはありません。",
    maintenance_start: "開始",
    maintenance_end: "終了予定",
    maintenance_work: "作業内容",
    maintenance_every_service: "すべてのサービス",
    maintenance_scheduled: "予定",
    maintenance_open: "作業中",
    started: "発生",
    resolved: "復旧",
    none: "なし",
    user_name: "ユーザー名",
    database_name: "データベース名",
    address: "アドレス",
    ftp: "FTP",
    mail: "メール",
    database: "データベース",
    rotate: "新しいパスワードを発行",
    rotate_note: "新しいパスワードを発行すると、古いパスワードは使えなくなり、サービスが新しいパスワードで再起動します(1分ほど)。",
    rotated: "新しいパスワードを発行しました。",
    not_provisioned: "まだ準備中です。",
    current_password: "現在のパスワード",
    new_password: "新しいパスワード",
    confirm_password: "新しいパスワード(確認)",
    save: "変更する",
    password_rules: "12文字以上、128文字以下。",
    password_mismatch: "新しいパスワードが確認欄と一致しません。",
    password_too_short: "新しいパスワードは12文字以上、128文字以下にしてください。",
    password_wrong: "現在のパスワードが違います。",
    service_unavailable: "ただいま処理できません。しばらくしてからもう一度お試しください。",
    php_title: "PHPバージョン",
    php_current: "現在のバージョン",
    php_choose: "使うバージョン (コースで選べるもの)",
    php_save: "変更する",
    php_saved: "PHPバージョンを変更しました。数分でサイトに反映されます。",
    php_not_allowed: "このバージョンはご契約のコースでは選べません。",
    php_managed_elsewhere: "PHPバージョンは販売会社が管理しています。変更はサポート窓口にお問い合わせください。",
    php_only_one: "ご契約のコースで選べるPHPバージョンはこの1つです。",
    phase_scheduled: "開始前",
    phase_provisioning: "準備中",
    phase_active: "稼働中",
    phase_suspended: "停止中(契約による)",
    phase_degraded: "一部停止",
    phase_terminating: "削除中",
    incident_open: "発生",
    incident_notified: "通知済み",
    incident_remediating: "対応中",
    incident_resolved: "復旧",
    incident_reported: "報告済み",
    kind_service_down: "サービス停止",
    kind_host_down: "サーバー停止",
    kind_mass_mail: "大量送信",
};

pub static EN: Texts = Texts {
    language_name: "English",
    login_title: "Log in",
    login_id: "Login ID",
    password: "Password",
    login_button: "Log in",
    login_failed: "The login ID or the password is wrong.",
    login_locked: "Too many wrong passwords: logging in is blocked for a while. Try again later or ask your hosting company's support.",
    logged_out: "You are logged out.",
    password_changed_login_again: "Your password was changed. Log in with the new password.",
    session_ended: "Your session ended. Please log in again.",
    logout: "Log out",
    overview: "Overview",
    credentials: "Credentials",
    change_password: "Change password",
    phase: "Status",
    services: "Services",
    service: "Service",
    state: "State",
    since: "Since",
    detail: "Detail",
    up: "Up",
    down: "Down",
    unknown: "Unknown",
    not_probed_yet: "No monitoring results yet.",
    course: "Course",
    limits: "Limits",
    domains: "Domains",
    mail_accounts: "Mail accounts",
    databases: "Databases",
    ftp_accounts: "FTP accounts",
    cpu: "CPU",
    memory: "Memory",
    disk: "Disk",
    bandwidth: "Bandwidth",
    php_version: "PHP version",
    php_note: "Choose among the PHP versions your course offers under \"PHP version\".",
    usage: "Usage",
    used: "Used",
    allowed: "Allowed",
    traffic_in: "Received this month",
    traffic_out: "Sent this month",
    not_measured: "not measured",
    measured_at: "Measured at",
    dns_title: "Domains and DNS records",
    dns_intro: "Set these records in the DNS of each domain.",
    host: "Host",
    record_type: "Type",
    value: "Value",
    dns_unset: "(ask your hosting company's support for the target)",
    no_domains: "No domains yet.",
    incidents_open: "Open incidents",
    incidents_past: "Past incidents",
    maintenance_title: "Planned maintenance",
    maintenance_none: "No maintenance is planned.",
    maintenance_start: "Begins",
    maintenance_end: "Planned end",
    maintenance_work: "Work",
    maintenance_every_service: "every service",
    maintenance_scheduled: "Scheduled",
    maintenance_open: "Under way",
    started: "Started",
    resolved: "Resolved",
    none: "None",
    user_name: "User name",
    database_name: "Database",
    address: "Address",
    ftp: "FTP",
    mail: "Mail",
    database: "Database",
    rotate: "Issue a new password",
    rotate_note: "A new password replaces the old one at once; the service restarts with it (about a minute).",
    rotated: "A new password was issued.",
    not_provisioned: "Not ready yet.",
    current_password: "Current password",
    new_password: "New password",
    confirm_password: "New password again",
    save: "Change",
    password_rules: "12 to 128 characters.",
    password_mismatch: "The new password and its confirmation differ.",
    password_too_short: "The new password must have 12 to 128 characters.",
    password_wrong: "The current password is wrong.",
    service_unavailable: "This cannot be done right now. Please try again in a moment.",
    php_title: "PHP version",
    php_current: "Current version",
    php_choose: "Version to use (among those your course offers)",
    php_save: "Change",
    php_saved: "The PHP version was changed. The site serves it within a few minutes.",
    php_not_allowed: "Your course does not offer this version.",
    php_managed_elsewhere: "Your hosting company manages the PHP version; ask its support to change it.",
    php_only_one: "Your course offers this one PHP version.",
    phase_scheduled: "Scheduled",
    phase_provisioning: "Provisioning",
    phase_active: "Active",
    phase_suspended: "Suspended",
    phase_degraded: "Degraded",
    phase_terminating: "Terminating",
    incident_open: "Open",
    incident_notified: "Notified",
    incident_remediating: "Remediating",
    incident_resolved: "Resolved",
    incident_reported: "Reported",
    kind_service_down: "Service down",
    kind_host_down: "Server down",
    kind_mass_mail: "Mass mail",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_wins_over_the_browser() {
        assert_eq!(Lang::negotiate(Some("en"), Some("ja")), Lang::En);
    }

    #[test]
    fn the_browser_preference_is_followed_by_quality() {
        assert_eq!(Lang::negotiate(None, Some("en-US,en;q=0.9")), Lang::En);
        assert_eq!(
            Lang::negotiate(None, Some("fr, en;q=0.5, ja;q=0.8")),
            Lang::Ja
        );
        assert_eq!(Lang::negotiate(None, Some("de, en;q=0.3")), Lang::En);
    }

    #[test]
    fn japanese_is_the_default() {
        assert_eq!(Lang::negotiate(None, None), Lang::Ja);
        assert_eq!(Lang::negotiate(Some("xx"), Some("fr")), Lang::Ja);
    }
}
