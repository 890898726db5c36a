#include <cerrno>

#include <catch2/catch.hpp>

#include "xensim/xenstored/errors.hpp"
#include "xensim/xenstored/ops.hpp"
#include "xensim/xenstored/transaction.hpp"

using namespace netbackd::xensim::xs;
using netbackd::platform::Perm;
using netbackd::platform::PermKind;

namespace {

const Caller kDom0{0, {}};

int error_of(const auto& fn) {
    try {
        fn();
    } catch (const XsError& e) {
        return e.code();
    }
    return 0;
}

} // namespace

TEST_CASE("write creates parents that inherit perms, owned by the creating domain", "[xenstored][ops]") {
    Tree t;
    std::vector<Change> ch;
    Limits lim;
    write(t, kDom0, "/d5", "", lim, ch);
    set_perms(t, kDom0, "/d5", {{5, PermKind::none}, {7, PermKind::read}}, ch);
    write(t, Caller{5, {}}, "/d5/a/b/c", "v", lim, ch);
    CHECK(read(t, kDom0, "/d5/a/b/c") == "v");
    CHECK(read(t, kDom0, "/d5/a") == "");
    CHECK(get_perms(t, kDom0, "/d5/a/b") == std::vector<Perm>{{5, PermKind::none}, {7, PermKind::read}});
    CHECK(directory(t, kDom0, "/d5/a") == std::vector<std::string>{"b"});
    CHECK(read(t, Caller{7, {}}, "/d5/a/b/c") == "v");
    CHECK(error_of([&] { write(t, Caller{7, {}}, "/d5/x", "v", lim, ch); }) == EACCES);
    CHECK(error_of([&] { read(t, Caller{8, {}}, "/d5/a/b/c"); }) == EACCES);
}

TEST_CASE("a missing node under an unreadable parent reports EACCES, not ENOENT", "[xenstored][ops]") {
    Tree t;
    std::vector<Change> ch;
    write(t, kDom0, "/secret/x", "1", Limits{}, ch);
    CHECK(error_of([&] { read(t, Caller{3, {}}, "/secret/missing"); }) == EACCES);
    CHECK(error_of([&] { read(t, kDom0, "/secret/missing"); }) == ENOENT);
}

TEST_CASE("rm: subtree goes, missing node is fine when its parent exists", "[xenstored][ops]") {
    Tree t;
    std::vector<Change> ch;
    write(t, kDom0, "/a/b/c", "1", Limits{}, ch);
    ch.clear();
    rm(t, kDom0, "/a/b", ch);
    CHECK(error_of([&] { read(t, kDom0, "/a/b/c"); }) == ENOENT);
    CHECK(directory(t, kDom0, "/a").empty());
    REQUIRE(ch.size() == 2);
    CHECK((ch[0].path == "/a/b" && !ch[0].exact));
    CHECK((ch[1].path == "/a/b/c" && ch[1].exact));
    CHECK(error_of([&] { rm(t, kDom0, "/a/b", ch); }) == 0);
    CHECK(error_of([&] { rm(t, kDom0, "/nope/b", ch); }) == ENOENT);
    CHECK(error_of([&] { rm(t, kDom0, "/", ch); }) == EINVAL);
}

TEST_CASE("set_perms needs ownership", "[xenstored][ops]") {
    Tree t;
    std::vector<Change> ch;
    write(t, kDom0, "/n", "", Limits{}, ch);
    set_perms(t, kDom0, "/n", {{4, PermKind::none}, {5, PermKind::both}}, ch);
    CHECK(error_of([&] { set_perms(t, Caller{5, {}}, "/n", {{5, PermKind::none}}, ch); }) == EACCES);
    CHECK(error_of([&] { set_perms(t, Caller{4, {}}, "/n", {{4, PermKind::read}}, ch); }) == 0);
    CHECK(get_perms(t, kDom0, "/n") == std::vector<Perm>{{4, PermKind::read}});
}

TEST_CASE("quotas: value size and nodes per domain", "[xenstored][ops]") {
    Tree t;
    std::vector<Change> ch;
    Limits lim{.max_value = 16, .max_nodes_per_domain = 3};
    write(t, kDom0, "/q", "", lim, ch);
    set_perms(t, kDom0, "/q", {{9, PermKind::none}}, ch); // owner 9: already one node
    CHECK(error_of([&] { write(t, Caller{9, {}}, "/q/a", std::string(17, 'x'), lim, ch); }) == E2BIG);
    CHECK(error_of([&] { write(t, Caller{9, {}}, "/q/a", std::string(16, 'x'), lim, ch); }) == 0);
    CHECK(error_of([&] { write(t, Caller{9, {}}, "/q/b/c", "", lim, ch); }) == ENOSPC);
    CHECK(error_of([&] { write(t, Caller{9, {}}, "/q/b", "", lim, ch); }) == 0);
    CHECK(error_of([&] { write(t, kDom0, "/q/c", "", lim, ch); }) == 0); // dom0 has no quota
}

// The quota's count is kept as nodes change rather than counted on each write (a whole-tree walk
// per guest write made a host's attach quadratic in its guests); it must always equal the count.
TEST_CASE("quotas: the per-domain node count follows writes, owner changes, removals and commits",
          "[xenstored][ops]") {
    Tree t;
    std::vector<Change> ch;
    const Limits lim{.max_nodes_per_domain = 4};
    const auto agree = [&] {
        for (const netbackd::platform::DomId d : {0, 7, 8})
            if (t.owned_by(d) != t.count_owned_by(d)) return false;
        return true;
    };
    write(t, kDom0, "/h7", "", lim, ch);
    set_perms(t, kDom0, "/h7", {{7, PermKind::none}}, ch);
    write(t, Caller{7, {}}, "/h7/a/b", "x", lim, ch); // two nodes
    write(t, Caller{7, {}}, "/h7/a/b", "y", lim, ch); // a rewrite adds none
    CHECK(t.owned_by(7) == 3);
    CHECK(agree());
    set_perms(t, kDom0, "/h7/a", {{8, PermKind::none}}, ch); // handed to domain 8
    CHECK(t.owned_by(7) == 2);
    CHECK(t.owned_by(8) == 1);
    CHECK(agree());
    write(t, Caller{7, {}}, "/h7/c", "", lim, ch);
    write(t, Caller{7, {}}, "/h7/d", "", lim, ch);
    CHECK(error_of([&] { write(t, Caller{7, {}}, "/h7/e", "", lim, ch); }) == ENOSPC);
    rm(t, Caller{7, {}}, "/h7/c", ch); // frees one: the next write fits again
    CHECK(error_of([&] { write(t, Caller{7, {}}, "/h7/e", "", lim, ch); }) == 0);
    CHECK(agree());
    Transaction tx(t);
    rm(tx, kDom0, "/h7/a", tx.pending());
    write(tx, kDom0, "/h0/x", "", lim, tx.pending());
    CHECK(t.owned_by(8) == 1); // nothing applied before the commit
    std::vector<Change> fired;
    REQUIRE(tx.commit(fired));
    CHECK(t.owned_by(8) == 0);
    CHECK(agree());
    rm(t, kDom0, "/h7", ch);
    CHECK(t.owned_by(7) == 0);
    CHECK(agree());
}

TEST_CASE("tree transactions: isolation, commit, conflict", "[xenstored][ops][tx]") {
    Tree t;
    std::vector<Change> ch;
    write(t, kDom0, "/x", "1", Limits{}, ch);

    Transaction tx(t);
    CHECK(read(tx, kDom0, "/x") == "1");
    write(tx, kDom0, "/y/z", "2", Limits{}, tx.pending());
    CHECK(error_of([&] { read(t, kDom0, "/y/z"); }) == ENOENT); // invisible until commit
    std::vector<Change> fired;
    CHECK(tx.commit(fired));
    CHECK(read(t, kDom0, "/y/z") == "2");
    CHECK(fired.size() == 1);

    Transaction loser(t);
    CHECK(read(loser, kDom0, "/x") == "1");
    write(loser, kDom0, "/w", "lost", Limits{}, loser.pending());
    write(t, kDom0, "/x", "changed", Limits{}, ch);
    fired.clear();
    CHECK_FALSE(loser.commit(fired));
    CHECK(fired.empty());
    CHECK(error_of([&] { read(t, kDom0, "/w"); }) == ENOENT);

    // A listing is a read of the parent: a new child conflicts with it.
    Transaction lister(t);
    directory(lister, kDom0, "/y");
    write(lister, kDom0, "/y/seen", "1", Limits{}, lister.pending());
    write(t, kDom0, "/y/other", "1", Limits{}, ch);
    CHECK_FALSE(lister.commit(fired));

    // Untouched nodes changing is no conflict.
    Transaction fine(t);
    write(fine, kDom0, "/y/z", "3", Limits{}, fine.pending());
    write(t, kDom0, "/x", "again", Limits{}, ch);
    CHECK(fine.commit(fired));
    CHECK(read(t, kDom0, "/y/z") == "3");
}
