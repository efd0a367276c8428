/// Milliseconds since 1970 as RFC 3339 UTC text (`2026-01-01T00:00:00.000Z`), by integer
/// arithmetic (the civil-from-days algorithm): no Foundation, no locale, no time zone database.
public enum UTCTime {
    public static func rfc3339(milliseconds: UInt64) -> String {
        let seconds = milliseconds / 1_000
        let days = Int64(seconds / 86_400)
        let secondOfDay = seconds % 86_400
        // Days since 1970-01-01 to year, month, day (proleptic Gregorian), after Howard Hinnant.
        let shifted = days + 719_468
        let era = shifted / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1_460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(Int64(secondOfDay / 3_600), 2)):"
            + "\(pad(Int64(secondOfDay % 3_600 / 60), 2)):\(pad(Int64(secondOfDay % 60), 2)).\(pad(Int64(milliseconds % 1_000), 3))Z"
    }
}
