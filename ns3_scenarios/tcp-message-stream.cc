#include "tcp-message-stream.h"

#include "ns3/inet-socket-address.h"
#include "ns3/packet.h"
#include "ns3/tcp-socket-base.h"
#include "ns3/tcp-socket-factory.h"

#include <algorithm>

using namespace ns3;

namespace cosim
{

namespace
{

/// ns-3 has no public TCP abort: Close() goes on sending what is buffered, so a transfer cut by
/// the deadline would spill into the next round. SendRST (protected) resets the connection,
/// cancels its timers and frees its endpoint; it is reached through a derived class.
struct TcpAbort : TcpSocketBase
{
    static void Abort(Ptr<Socket> socket)
    {
        TcpSocketBase* tcp = PeekPointer(DynamicCast<TcpSocketBase>(socket));
        if (tcp && tcp->*(&TcpAbort::m_endPoint))
        {
            (tcp->*(&TcpAbort::SendRST))();
        }
    }
};

} // namespace

std::shared_ptr<TcpMessageStream>
TcpMessageStream::Open(Ptr<Node> from, Ptr<Node> to, Ipv4Address toAddress, uint16_t port)
{
    std::shared_ptr<TcpMessageStream> s(new TcpMessageStream());
    s->Listen(to, port);
    s->Connect(from, toAddress, port);
    return s;
}

void
TcpMessageStream::Listen(Ptr<Node> node, uint16_t port)
{
    m_listener = Socket::CreateSocket(node, TcpSocketFactory::GetTypeId());
    m_listener->Bind(InetSocketAddress(Ipv4Address::GetAny(), port));
    m_listener->Listen();
    // the sockets' callbacks hold the stream; Close() drops them
    auto self = shared_from_this();
    auto onRecv = [self](Ptr<Socket> s) {
        while (Ptr<Packet> p = s->Recv())
        {
            self->m_received += p->GetSize();
        }
        self->Deliver();
    };
    m_listener->SetAcceptCallback(MakeNullCallback<bool, Ptr<Socket>, const Address&>(),
                                  Callback<void, Ptr<Socket>, const Address&>(
                                      [self, onRecv](Ptr<Socket> s, const Address&) {
                                          self->m_rx = s;
                                          s->SetRecvCallback(Callback<void, Ptr<Socket>>(onRecv));
                                      }));
}

void
TcpMessageStream::Connect(Ptr<Node> node, Ipv4Address to, uint16_t port)
{
    m_tx = Socket::CreateSocket(node, TcpSocketFactory::GetTypeId());
    m_tx->Bind();
    auto self = shared_from_this();
    m_tx->SetConnectCallback(Callback<void, Ptr<Socket>>([self](Ptr<Socket>) { self->Pump(); }),
                             MakeNullCallback<void, Ptr<Socket>>());
    m_tx->SetSendCallback(Callback<void, Ptr<Socket>, uint32_t>([self](Ptr<Socket>, uint32_t) { self->Pump(); }));
    m_tx->Connect(InetSocketAddress(to, port));
}

void
TcpMessageStream::Send(uint64_t bytes, std::function<void()> delivered)
{
    m_total += bytes;
    m_waiting.emplace_back(m_total, std::move(delivered));
    Deliver(); // an empty message behind arrived ones is in at once
    Pump();
}

uint64_t
TcpMessageStream::Received() const
{
    return std::min(m_received, m_total);
}

void
TcpMessageStream::Pump()
{
    while (m_tx && m_sent < m_total)
    {
        uint64_t n = std::min<uint64_t>({m_total - m_sent, m_tx->GetTxAvailable(), 65536});
        if (n == 0)
        {
            return; // the send callback resumes when the buffer drains
        }
        int sent = m_tx->Send(Create<Packet>(n));
        if (sent <= 0)
        {
            return; // not connected yet: the connect callback pumps
        }
        m_sent += sent;
    }
}

void
TcpMessageStream::Deliver()
{
    while (!m_waiting.empty() && m_waiting.front().first <= m_received)
    {
        auto delivered = std::move(m_waiting.front().second);
        m_waiting.pop_front();
        delivered();
    }
}

void
TcpMessageStream::Close()
{
    m_waiting.clear();
    if (m_listener)
    {
        m_listener->SetAcceptCallback(MakeNullCallback<bool, Ptr<Socket>, const Address&>(),
                                      MakeNullCallback<void, Ptr<Socket>, const Address&>());
        m_listener->Close();
    }
    if (m_rx)
    {
        m_rx->SetRecvCallback(MakeNullCallback<void, Ptr<Socket>>());
        m_rx->Close();
    }
    if (m_tx)
    {
        m_tx->SetConnectCallback(MakeNullCallback<void, Ptr<Socket>>(), MakeNullCallback<void, Ptr<Socket>>());
        m_tx->SetSendCallback(MakeNullCallback<void, Ptr<Socket>, uint32_t>());
        if (m_received < m_total)
        {
            TcpAbort::Abort(m_tx);
        }
        m_tx->Close();
    }
}

} // namespace cosim
