#include <catch2/catch.hpp>

#include "backend/control/keys.hpp"

using namespace netbackd::control;

TEST_CASE("parse_unsigned is strict", "[control][keys]") {
    CHECK(*parse_unsigned("0", 10) == 0);
    CHECK(*parse_unsigned("10", 10) == 10);
    CHECK(*parse_unsigned("007", 10) == 7);
    CHECK(*parse_unsigned("18446744073709551615", UINT64_MAX) == UINT64_MAX);
    for (const char* junk :
         {"", " 1", "1 ", "+1", "-1", "0x10", "1e3", "11", "1.0", "abc", "1\n", "18446744073709551616"}) {
        INFO(junk);
        CHECK_FALSE(parse_unsigned(junk, 10));
    }
    CHECK_FALSE(parse_unsigned("11", 10).error().empty());
}

TEST_CASE("parse_state accepts 0..8 only", "[control][keys]") {
    CHECK(*parse_state("4") == XenbusState::connected);
    CHECK(*parse_state("8") == XenbusState::reconfigured);
    for (const char* junk : {"9", "", "-1", "4 ", "Connected"}) CHECK_FALSE(parse_state(junk));
}

TEST_CASE("parse_flag", "[control][keys]") {
    CHECK(*parse_flag("1"));
    CHECK_FALSE(*parse_flag("0"));
    CHECK(*parse_flag("2"));
    for (const char* junk : {"", "yes", "true", " 1", "-1"}) CHECK_FALSE(parse_flag(junk));
}

TEST_CASE("parse_domid refuses reserved ids", "[control][keys]") {
    CHECK(*parse_domid("0") == 0);
    CHECK(*parse_domid("32751") == 0x7FEF);
    for (const char* junk : {"32752", "65535", "", "7a", "-7"}) CHECK_FALSE(parse_domid(junk));
}

TEST_CASE("parse_grant_ref and parse_port", "[control][keys]") {
    CHECK(*parse_grant_ref("4294967295") == 4294967295u);
    CHECK(*parse_grant_ref("0") == 0);
    CHECK_FALSE(parse_grant_ref("4294967296"));
    CHECK_FALSE(parse_grant_ref("ref"));
    CHECK(*parse_port("17") == 17);
    CHECK_FALSE(parse_port("0"));
    CHECK_FALSE(parse_port("-3"));
    CHECK_FALSE(parse_port(""));
}

TEST_CASE("parse_mac", "[control][keys]") {
    const auto m = parse_mac("00:16:3e:AB:cd:ef");
    REQUIRE(m);
    CHECK(*m == Mac{0x00, 0x16, 0x3e, 0xab, 0xcd, 0xef});
    CHECK(format_mac(*m) == "00:16:3e:ab:cd:ef");
    for (const char* junk :
         {"", "00:16:3e:ab:cd", "00:16:3e:ab:cd:ef:00", "00-16-3e-ab-cd-ef", "0:16:3e:ab:cd:eff",
          "00:16:3e:ab:cd:eg", "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", " 00:16:3e:ab:cd:e"}) {
        INFO(junk);
        CHECK_FALSE(parse_mac(junk));
    }
}

TEST_CASE("parse_rate", "[control][keys]") {
    CHECK(*parse_rate("12500000,50000") == Rate{12500000, 50000});
    CHECK(*parse_rate("0,1") == Rate{0, 1});
    // Bounded so that the token bucket's credit cannot wrap.
    CHECK(*parse_rate("1099511627776,1000000") == Rate{kMaxRateBytes, 1000000});
    CHECK(parse_rate("1099511627777,1000000").error() ==
          "1099511627777 bytes per interval above the maximum 1099511627776");
    CHECK_FALSE(parse_rate("18446744073709551615,1"));
    for (const char* junk :
         {"", ",", "1,", ",1", "1,0", "1;2", "1,2,3", "x,1", "1,4294967296", "1 ,2", "-1,2"}) {
        INFO(junk);
        CHECK_FALSE(parse_rate(junk));
    }
}

TEST_CASE("parse_queue_count and parse_mtu", "[control][keys]") {
    CHECK(*parse_queue_count("1", 8) == 1);
    CHECK(*parse_queue_count("8", 8) == 8);
    for (const char* junk : {"0", "9", "", "x", "4294967296"}) CHECK_FALSE(parse_queue_count(junk, 8));
    CHECK(parse_queue_count("9", 8).error().find("1..8") != std::string::npos);
    CHECK(*parse_mtu("1500") == 1500);
    CHECK(*parse_mtu("68") == 68);
    for (const char* junk : {"67", "65536", "", "1500b"}) CHECK_FALSE(parse_mtu(junk));
}
