/// A calendar date (proleptic Gregorian) as the number of days since 1970-01-01.
///
/// The civil conversions are Howard Hinnant's `days_from_civil` / `civil_from_days`, so
/// every date the sample writes is a real calendar date without touching Foundation.
struct SampleDay: Comparable, Hashable, Strideable {
    var number: Int

    init(number: Int) { self.number = number }

    init(year: Int, month: Int, day: Int) {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        number = era * 146_097 + doe - 719_468
    }

    /// Parses `YYYY-MM-DD`; nil unless it names a real calendar date.
    init?(parsing text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
            let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]),
            (1...12).contains(m), (1...SampleMonth(year: y, month: m).dayCount).contains(d)
        else { return nil }
        self.init(year: y, month: m, day: d)
    }

    var civil: (year: Int, month: Int, day: Int) {
        let z = number + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    var year: Int { civil.year }
    var month: SampleMonth {
        let c = civil
        return SampleMonth(year: c.year, month: c.month)
    }

    /// `YYYY-MM-DD`, the standard's date form.
    var text: String {
        let c = civil
        return padded(c.year, 4) + "-" + padded(c.month, 2) + "-" + padded(c.day, 2)
    }

    /// `YYYYMMDD`, for ids and business references.
    var compact: String {
        let c = civil
        return padded(c.year, 4) + padded(c.month, 2) + padded(c.day, 2)
    }

    /// 0 = Sunday … 6 = Saturday.
    var weekday: Int { ((number + 4) % 7 + 7) % 7 }
    var isWeekend: Bool { weekday == 0 || weekday == 6 }

    /// The same month and day `years` later (29 February becomes 28 February).
    func addingYears(_ years: Int) -> SampleDay {
        let c = civil
        let m = SampleMonth(year: c.year + years, month: c.month)
        return SampleDay(year: m.year, month: m.month, day: min(c.day, m.dayCount))
    }

    static func < (a: SampleDay, b: SampleDay) -> Bool { a.number < b.number }
    func advanced(by n: Int) -> SampleDay { SampleDay(number: number + n) }
    func distance(to other: SampleDay) -> Int { other.number - number }
}

/// A calendar month.
struct SampleMonth: Comparable, Hashable {
    var year: Int
    var month: Int

    /// Months since year 0, for ordering and as a generator key.
    var index: Int { year * 12 + month - 1 }
    var first: SampleDay { SampleDay(year: year, month: month, day: 1) }
    var last: SampleDay { SampleDay(year: year, month: month, day: dayCount) }
    var dayCount: Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
    var next: SampleMonth { month == 12 ? SampleMonth(year: year + 1, month: 1) : SampleMonth(year: year, month: month + 1) }
    var quarter: Int { (month - 1) / 3 + 1 }
    /// `YYYYMM`, for ids.
    var compact: String { padded(year, 4) + padded(month, 2) }

    /// The `day`-th of the month (clamped to its length) moved off a weekend: to the
    /// Monday after, or to the Friday before when that Monday is in the next month.
    func workday(_ day: Int) -> SampleDay {
        var d = SampleDay(year: year, month: month, day: min(max(day, 1), dayCount))
        if d.weekday == 6 { d = d.advanced(by: 2) } else if d.weekday == 0 { d = d.advanced(by: 1) }
        if d > last { d = d.advanced(by: -3) }
        return d
    }

    static func < (a: SampleMonth, b: SampleMonth) -> Bool { a.index < b.index }
}

/// The span of days the sample covers: `years` whole years ending on the shape's end date.
struct SampleWindow: Hashable {
    var start: SampleDay
    var end: SampleDay

    init(endDate: String, years: Int) {
        guard let end = SampleDay(parsing: endDate) else {
            preconditionFailure("ProvinceShape.endDate '\(endDate)' is not a calendar date in YYYY-MM-DD form")
        }
        precondition(years >= 1, "ProvinceShape.years must be at least 1")
        self.end = end
        start = end.advanced(by: 1).addingYears(-years)
    }

    var months: [SampleMonth] {
        var out: [SampleMonth] = []
        var m = start.month
        while m <= end.month {
            out.append(m)
            m = m.next
        }
        return out
    }

    func contains(_ d: SampleDay) -> Bool { start <= d && d <= end }

    /// The days of `month` inside the window.
    func span(of month: SampleMonth) -> ClosedRange<SampleDay> { max(month.first, start)...min(month.last, end) }
}
