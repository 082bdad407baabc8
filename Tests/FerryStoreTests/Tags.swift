import Testing

extension Tag {
    /// A suite that takes minutes (real processes, long schedules, big data):
    /// `scripts/test --fast` leaves these out, the README's test command (and CI) runs them.
    /// scripts/test reads the tag from the sources, so tagging a suite is all it takes.
    @Tag static var slow: Self
}
