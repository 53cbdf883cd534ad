// The one way untorn includes Boost.Asio. Boost 1.74's awaitable.hpp uses std::exchange
// without including <utility>; including it first here keeps that working whatever order
// clang-format gives the includes of the files that use Asio.
#pragma once

// clang-format off
#include <utility>
#include <boost/asio.hpp>
// clang-format on
