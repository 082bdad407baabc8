import FerryConfig
import FerryTestTraits
import FerryWire
import Testing

@Suite("Client addresses", .offThePool)
struct ClientAddressTests {
    @Test("IPv4 and IPv6 addresses parse to bytes and print in one canonical form; anything else is refused")
    func addressesParse() {
        #expect(IPAddress("192.0.2.7")?.bytes == [192, 0, 2, 7])
        #expect(IPAddress("2001:DB8:0:0:0:0:0:1")?.description == "2001:db8::1")
        #expect(IPAddress("2001:db8:0:1:0:0:0:0")?.description == "2001:db8:0:1::")
        #expect(IPAddress("::")?.description == "::" && IPAddress("::1")?.description == "::1")
        #expect(IPAddress("::ffff:192.0.2.7")?.description == "192.0.2.7", "an IPv4-mapped peer is the IPv4 client")
        #expect(IPAddress("fe80::1%eth0")?.description == "fe80::1")
        #expect(IPAddress(hostPort: "[2001:db8::1]:443")?.description == "2001:db8::1")
        #expect(IPAddress(hostPort: " 192.0.2.7:5678 ")?.description == "192.0.2.7")
        for bad in ["", "256.0.0.1", "1.2.3", "1.2.3.4.5", "1::2::3", "12345::", "::g", "unknown", "1.2.3.-4", ":::"] {
            #expect(IPAddress(bad) == nil, "\(bad)")
        }
    }

    @Test("a range holds exactly the addresses under its prefix")
    func rangesMatch() throws {
        let net = try #require(IPAddressRange("10.1.0.0/16"))
        #expect(net.contains(IPAddress("10.1.255.3")!) && !net.contains(IPAddress("10.2.0.1")!))
        let v6 = try #require(IPAddressRange("fd00::/8"))
        #expect(v6.contains(IPAddress("fd12::1")!) && !v6.contains(IPAddress("fe00::1")!) && !v6.contains(IPAddress("10.1.0.1")!))
        #expect(IPAddressRange("127.0.0.1")?.contains(IPAddress("127.0.0.1")!) == true)
        #expect(IPAddressRange("10.0.0.0/33") == nil && IPAddressRange("10.0.0.0/") == nil)
        #expect(IPAddressRange.list(" 127.0.0.1, ::1 ,10.0.0.0/8")?.count == 3)
        #expect(IPAddressRange.list("")?.isEmpty == true)
        #expect(IPAddressRange.list("127.0.0.1, proxy.local") == nil)
    }

    @Test("X-Forwarded-For names the client only through trusted proxies, read from the nearest hop")
    func forwardedFor() {
        let proxies = IPAddressRange.list("127.0.0.1, 10.0.0.0/8")!
        #expect(ClientAddress.resolve(peer: "127.0.0.1", forwardedFor: ["198.51.100.7"], trustedProxies: []) == "127.0.0.1")
        #expect(ClientAddress.resolve(peer: "192.0.2.1", forwardedFor: ["198.51.100.7"], trustedProxies: proxies) == "192.0.2.1")
        #expect(ClientAddress.resolve(peer: "127.0.0.1", forwardedFor: ["198.51.100.7"], trustedProxies: proxies) == "198.51.100.7")
        // The client wrote the left part; the trusted proxies appended the rest.
        #expect(ClientAddress.resolve(peer: "127.0.0.1", forwardedFor: ["6.6.6.6, 198.51.100.7", "10.0.0.5"], trustedProxies: proxies) == "198.51.100.7")
        #expect(ClientAddress.resolve(peer: "127.0.0.1", forwardedFor: ["garbage"], trustedProxies: proxies) == "127.0.0.1")
        #expect(ClientAddress.resolve(peer: "::ffff:127.0.0.1", forwardedFor: ["[2001:db8::7]:1234"], trustedProxies: proxies) == "2001:db8::7")
        #expect(ClientAddress.resolve(peer: nil, forwardedFor: ["198.51.100.7"], trustedProxies: proxies) == nil)
        #expect(ClientAddress.throttleKey("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64")
        #expect(ClientAddress.throttleKey("192.0.2.7") == "192.0.2.7")
    }

    @Test("the hub's trusted_proxies key takes addresses and ranges and names a wrong entry")
    func trustedProxiesConfig() throws {
        let c = try HubConfig.parse(#"trusted_proxies = "127.0.0.1, ::1, 10.0.0.0/8""#)
        #expect(c.trustedProxyRanges.map(\.description) == ["127.0.0.1", "::1", "10.0.0.0/8"])
        #expect(try HubConfig.parse("").trustedProxyRanges.isEmpty)
        #expect {
            try HubConfig.parse(#"trusted_proxies = "127.0.0.1, nginx""#)
        } throws: { "\($0)".contains("trusted_proxies") && "\($0)".contains("\"nginx\"") }
    }
}
