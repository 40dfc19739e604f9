#include "cosim-radio.h"
#include <stdexcept>
namespace cosim
{
std::unique_ptr<CosimRadio>
MakeLteRadio()
{
    throw std::runtime_error("radio lte: not implemented yet");
}
} // namespace cosim
