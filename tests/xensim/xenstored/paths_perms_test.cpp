#include <catch2/catch.hpp>

#include "xensim/xenstored/paths.hpp"
#include "xensim/xenstored/perms.hpp"

using namespace netbackd::xensim::xs;
using netbackd::platform::Perm;
using netbackd::platform::PermKind;

TEST_CASE("relative paths resolve against the caller's home", "[xenstored][paths]") {
    CHECK(resolve("domid", 5) == "/local/domain/5/domid");
    CHECK(resolve("device/vif/0", 0) == "/local/domain/0/device/vif/0");
    CHECK(resolve("/local/domain/7", 5) == "/local/domain/7");
    CHECK(resolve("@releaseDomain", 5) == "@releaseDomain");
    CHECK(resolve("/", 3) == "/");
}

TEST_CASE("invalid paths are refused", "[xenstored][paths]") {
    CHECK_FALSE(resolve("", 0));
    CHECK_FALSE(resolve("/a//b", 0));
    CHECK_FALSE(resolve("/a/", 0));
    CHECK_FALSE(resolve("/a b", 0));
    CHECK_FALSE(resolve("/a/b.c", 0));
    CHECK_FALSE(resolve("@", 0));
    CHECK_FALSE(resolve("@a/b", 0));
    CHECK_FALSE(resolve("/" + std::string(4000, 'a'), 0));
}

TEST_CASE("ancestry", "[xenstored][paths]") {
    CHECK(is_under("/a/b", "/a"));
    CHECK(is_under("/a", "/a"));
    CHECK(is_under("/a", "/"));
    CHECK_FALSE(is_under("/ab", "/a"));
    CHECK_FALSE(is_under("/a", "/a/b"));
    CHECK_FALSE(is_under("@releaseDomain", "/"));
    CHECK(parent_of("/a/b") == "/a");
    CHECK(parent_of("/a") == "/");
    CHECK(leaf_of("/a/b") == "b");
    CHECK(child_of("/", "a") == "/a");
    CHECK(child_of("/a", "b") == "/a/b");
}

TEST_CASE("perm strings round-trip", "[xenstored][perms]") {
    CHECK(parse_perm("r5") == Perm{5, PermKind::read});
    CHECK(parse_perm("b0") == Perm{0, PermKind::both});
    CHECK(format_perm({12, PermKind::write}) == "w12");
    CHECK(format_perm({3, PermKind::none}) == "n3");
    CHECK_FALSE(parse_perm("x5"));
    CHECK_FALSE(parse_perm("r"));
    CHECK_FALSE(parse_perm("r70000"));
    CHECK_FALSE(parse_perm("r5x"));
}

TEST_CASE("access: owner, listed domains, default entry, privilege", "[xenstored][perms]") {
    const std::vector<Perm> perms{{2, PermKind::none}, {5, PermKind::read}, {6, PermKind::write}};
    CHECK(access_for(Caller{2, {}}, perms) == (kRead | kWrite | kOwner));
    CHECK(access_for(Caller{5, {}}, perms) == kRead);
    CHECK(access_for(Caller{6, {}}, perms) == kWrite);
    CHECK(access_for(Caller{9, {}}, perms) == 0);
    CHECK(access_for(Caller{0, {}}, perms) == (kRead | kWrite | kOwner));
    CHECK(access_for(Caller{9, 5}, perms) == kRead); // acting for its target
    const std::vector<Perm> everyone_reads{{2, PermKind::read}};
    CHECK(access_for(Caller{9, {}}, everyone_reads) == kRead);
}
