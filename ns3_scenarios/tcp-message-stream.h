// Messages over one TCP connection, one after the other, as a split-learning client and its server
// exchange them: the connection opens with the first message and stays up until Close; a message
// has arrived when its last byte has been read at the other end. Used by the LTE radio to carry
// the round protocol's messages (cosim-protocol.h); one stream per device and direction.
#ifndef TCP_MESSAGE_STREAM_H
#define TCP_MESSAGE_STREAM_H

#include "ns3/ipv4-address.h"
#include "ns3/node.h"
#include "ns3/ptr.h"
#include "ns3/socket.h"

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <utility>

namespace cosim
{

class TcpMessageStream : public std::enable_shared_from_this<TcpMessageStream>
{
  public:
    /// A connection from `from` to `to`:`port` (a listener is put up on `to`).
    static std::shared_ptr<TcpMessageStream> Open(ns3::Ptr<ns3::Node> from,
                                                  ns3::Ptr<ns3::Node> to,
                                                  ns3::Ipv4Address toAddress,
                                                  uint16_t port);

    /// Queue a message of `bytes` behind the ones already sent; `delivered` is called once its last
    /// byte has been read at the other end (an empty message: once the ones before it have).
    void Send(uint64_t bytes, std::function<void()> delivered);

    /// Payload bytes read at the other end so far.
    uint64_t Received() const;

    /// Close both ends and forget the messages still under way. A connection that has not carried
    /// everything is reset, so nothing it still buffers spills into what the simulation does next.
    void Close();

  private:
    TcpMessageStream() = default;
    void Listen(ns3::Ptr<ns3::Node> node, uint16_t port);
    void Connect(ns3::Ptr<ns3::Node> node, ns3::Ipv4Address to, uint16_t port);
    void Pump();
    void Deliver();

    uint64_t m_total{0};    ///< bytes of every message handed over so far
    uint64_t m_sent{0};     ///< bytes given to the socket
    uint64_t m_received{0}; ///< bytes the receiver has read
    std::deque<std::pair<uint64_t, std::function<void()>>> m_waiting; ///< (end in the stream, delivered)
    ns3::Ptr<ns3::Socket> m_listener;
    ns3::Ptr<ns3::Socket> m_rx;
    ns3::Ptr<ns3::Socket> m_tx;
};

} // namespace cosim

#endif // TCP_MESSAGE_STREAM_H
